//! Progressive traffic shifts on the simulator: steps with bake time between
//! them (read back from the simulator's timestamped change history), health
//! gates and rollback, a restart between steps, and the plan-time safety
//! invariants.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{call_totals, copy_example_verbatim, sim_run, world};

const GA: &str = "global-accelerator.yaml";
const POLICIES: &str = "policies.yaml";

/// A world with the example applied, and the example copied with the
/// `careful` policy's bake time set to `bake` seconds.
fn setup(bake: u32) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let sim = root.join("sim");
    let run = sim_run(&root, &sim, &["sim", "faults", "--deploy-delay-ms", "10"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let desired = copy_example_verbatim(&root);
    edit(
        &desired,
        POLICIES,
        "bakeSeconds: 300",
        &format!("bakeSeconds: {bake}"),
    );
    // These tests drain us-east-1, whose US clients the example's
    // client-origin residency policy keeps in North America (that policy has
    // its own test below).
    let ga = desired.join(GA);
    let text = std::fs::read_to_string(&ga).expect("read");
    std::fs::write(&ga, common::without_client_residency(&text)).expect("write");
    // The example denies changes over weekends; these tests must not depend
    // on the day they run.
    edit(
        &desired,
        POLICIES,
        "{cron: \"0 16 * * FRI\", durationMinutes: 3840, timeZone: UTC}",
        common::NEVER_OPEN_WINDOW,
    );
    let apply = sim_run(&root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    (dir, sim, desired)
}

fn edit(desired: &Path, file: &str, from: &str, to: &str) {
    let path = desired.join(file);
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains(from), "{from} in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
}

/// Sets the dial of `region` in the `https` listener of `api`.
fn want_https_dial(desired: &Path, region: &str, dial: u32) {
    let path = desired.join(GA);
    let text = std::fs::read_to_string(&path).expect("read");
    let https = text.find("- name: https").expect("https listener");
    let at = https
        + text[https..]
            .find(&format!("- region: {region}"))
            .expect("region");
    let dial_at = at + text[at..].find("trafficDial: ").expect("dial");
    let end = dial_at + "trafficDial: ".len();
    let digits = text[end..].chars().take_while(char::is_ascii_digit).count();
    let edited = format!("{}{dial}{}", &text[..end], &text[end + digits..]);
    std::fs::write(&path, edited).expect("write");
}

/// Writes to the `https` us-east-1 endpoint group, from the simulator's
/// history: (time in ms, dial).
fn dial_writes(sim: &Path, region: &str) -> Vec<(u64, u64)> {
    let world = world(sim);
    world["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["operation"] == "UpdateEndpointGroup")
        .filter_map(|h| {
            let detail = h["detail"].as_str()?;
            if !detail.contains(&format!("region={region}")) {
                return None;
            }
            let dial = detail
                .split("dial=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((h["at_ms"].as_u64()?, dial))
        })
        .collect()
}

/// Writes that set an endpoint's weight: (time in ms, weight).
fn weight_writes(sim: &Path, endpoint: &str) -> Vec<(u64, u64)> {
    let world = world(sim);
    world["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| {
            let detail = h["detail"].as_str()?;
            let at = detail.find(&format!("{endpoint} weight="))?;
            let weight = detail[at..]
                .split("weight=")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            Some((h["at_ms"].as_u64()?, weight))
        })
        .collect()
}

fn assert_baked(writes: &[(u64, u64)], bake_ms: u64) {
    for pair in writes.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= bake_ms,
            "steps {pair:?} are less than the bake time ({bake_ms} ms) apart: {writes:?}"
        );
    }
}

fn spawn_apply(root: &Path, sim: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["--sim", sim.to_str().expect("utf-8"), "apply", "--yes"])
        .current_dir(root)
        .env_remove("MERIDIAN_SIM")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("apply starts")
}

fn wait_until(what: &str, timeout: Duration, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_dial_moves_in_steps_with_the_bake_time_between_them() {
    let (dir, sim, desired) = setup(2);
    let root = dir.path();
    want_https_dial(&desired, "us-east-1", 0);

    let plan = sim_run(root, &sim, &["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(
        plan.stdout.contains("Traffic moves in 4 step(s)")
            && plan.stdout.contains("trafficDial 100 → 75")
            && plan.stdout.contains("trafficDial 25 → 0"),
        "the plan shows the schedule:\n{}",
        plan.stdout
    );

    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let writes = dial_writes(&sim, "us-east-1");
    let dials: Vec<u64> = writes.iter().map(|w| w.1).collect();
    assert_eq!(dials, vec![75, 50, 25, 0], "{writes:?}");
    assert_baked(&writes, 2_000);
    let replan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.code, 0, "{}", replan.all());
}

#[test]
fn endpoint_weights_move_in_steps_too() {
    let (dir, sim, desired) = setup(1);
    let root = dir.path();
    let endpoint = "loadbalancer/net/grpc-us/4d2e8f10";
    // grpc us-east-1's main endpoint: weight 200 → 0 (the group's canary
    // and the other regions keep serving).
    let path = desired.join(GA);
    let text = std::fs::read_to_string(&path).expect("read");
    let at = text.find(endpoint).expect("endpoint");
    let weight_at = at + text[at..].find("weight: 200").expect("weight");
    std::fs::write(
        &path,
        format!(
            "{}weight: 0{}",
            &text[..weight_at],
            &text[weight_at + "weight: 200".len()..]
        ),
    )
    .expect("write");
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let writes = weight_writes(&sim, endpoint);
    let weights: Vec<u64> = writes.iter().map(|w| w.1).collect();
    assert_eq!(weights, vec![200, 150, 100, 50, 0], "{writes:?}");
    assert_baked(&writes[1..], 1_000);
}

#[test]
fn an_unhealthy_region_mid_rollout_rolls_back_and_the_revision_is_not_retried() {
    // A bake long enough for the test to turn a region unhealthy inside it,
    // even on a loaded machine.
    let (dir, sim, desired) = setup(5);
    let root = dir.path();
    want_https_dial(&desired, "us-east-1", 0);
    let child = spawn_apply(root, &sim);
    // Step 1 lands; during its bake eu-central-1 goes down.
    wait_until("step 1", Duration::from_secs(30), || {
        dial_writes(&sim, "us-east-1").last().map(|w| w.1) == Some(75)
    });
    let down = sim_run(
        root,
        &sim,
        &["sim", "set-health", "eu-central-1", "unhealthy"],
    );
    assert_eq!(down.code, 0, "{}", down.all());
    let output = child.wait_with_output().expect("apply ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("eu-central-1") && stderr.contains("healthy fraction"),
        "the failed gate is named:\n{stderr}"
    );
    assert!(stdout.contains("Rollback step"), "{stdout}");
    // Back to the last good value, no further forward step.
    let dials: Vec<u64> = dial_writes(&sim, "us-east-1").iter().map(|w| w.1).collect();
    assert_eq!(dials, vec![75, 100]);

    // The same revision is not tried again: nothing is written.
    let (_, writes) = call_totals(&sim);
    let again = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(again.stderr.contains("failed its gates"), "{}", again.all());
    assert_eq!(
        call_totals(&sim).1,
        writes,
        "no write for a failed revision"
    );
    let status = common::meridian(root, &["status", "--format", "json"]);
    assert_eq!(status.code, 0, "{}", status.all());
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(
        status["rollout"]["current"]["status"], "failed",
        "{status:#}"
    );
    assert_eq!(
        status["rollout"]["failed"].as_object().map(|f| f.len()),
        Some(1),
        "{status:#}"
    );

    // Health back and an explicit retry: the rollout runs to the end.
    let up = sim_run(
        root,
        &sim,
        &["sim", "set-health", "eu-central-1", "healthy"],
    );
    assert_eq!(up.code, 0, "{}", up.all());
    let retry = common::meridian(root, &["retry"]);
    assert_eq!(retry.code, 0, "{}", retry.all());
    // The same desired state (same revision) now rolls out again.
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let dials: Vec<u64> = dial_writes(&sim, "us-east-1").iter().map(|w| w.1).collect();
    assert_eq!(dials, vec![75, 100, 75, 50, 25, 0]);
}

#[test]
fn a_process_killed_between_steps_continues_from_the_right_step() {
    let (dir, sim, desired) = setup(3);
    let root = dir.path();
    want_https_dial(&desired, "us-east-1", 0);
    let mut child = spawn_apply(root, &sim);
    wait_until("step 1", Duration::from_secs(30), || {
        dial_writes(&sim, "us-east-1").last().map(|w| w.1) == Some(75)
    });
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let killed_at = dial_writes(&sim, "us-east-1")
        .last()
        .map(|w| w.0)
        .expect("write");

    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let writes = dial_writes(&sim, "us-east-1");
    let dials: Vec<u64> = writes.iter().map(|w| w.1).collect();
    // No jump to the target, no repeated step.
    assert_eq!(dials, vec![75, 50, 25, 0], "{writes:?}");
    // The restarted process waited out step 1's bake before step 2.
    assert!(writes[1].0 - killed_at >= 3_000, "{writes:?}");
    assert_baked(&writes, 3_000);
}

fn assert_blocked_and_unchanged(root: &Path, sim: &Path, args: &[&str], expect: &str) {
    let before = common::normalized(sim);
    let (_, writes) = call_totals(sim);
    let mut plan_args = vec!["plan"];
    plan_args.extend_from_slice(args);
    let plan = sim_run(root, sim, &plan_args);
    assert_eq!(plan.code, 3, "{}", plan.all());
    assert!(
        plan.all().contains(expect),
        "`{expect}` in:\n{}",
        plan.all()
    );
    let mut apply_args = vec!["apply", "--yes"];
    apply_args.extend_from_slice(args);
    let apply = sim_run(root, sim, &apply_args);
    assert_eq!(apply.code, 3, "{}", apply.all());
    assert_eq!(call_totals(sim).1, writes, "nothing was written");
    assert_eq!(common::normalized(sim), before);
}

#[test]
fn plans_breaking_a_safety_invariant_exit_3_and_change_nothing() {
    let (dir, sim, desired) = setup(0);
    let root = dir.path();
    // Fewer serving regions than the policy's minServingRegions (2).
    want_https_dial(&desired, "us-east-1", 0);
    want_https_dial(&desired, "eu-central-1", 0);
    assert_blocked_and_unchanged(root, &sim, &[], "minServingRegions");
    // Every dial at 0: blocked without an acknowledgement.
    want_https_dial(&desired, "ap-southeast-1", 0);
    assert_blocked_and_unchanged(root, &sim, &[], "would serve no traffic at all");
    // Acknowledged, it is a plan like any other.
    edit(
        &desired,
        GA,
        "    - name: https\n",
        "    - name: https\n      acknowledgeZeroTraffic: true\n",
    );
    let plan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all());
}

#[test]
fn a_traffic_change_inside_a_deny_window_is_blocked_unless_overridden() {
    let (dir, sim, desired) = setup(0);
    let root = dir.path();
    // A window that is always open: every minute, for a day.
    edit(
        &desired,
        POLICIES,
        common::NEVER_OPEN_WINDOW,
        "{cron: \"* * * * *\", durationMinutes: 1440, timeZone: Europe/Berlin}",
    );
    want_https_dial(&desired, "ap-southeast-1", 100);
    assert_blocked_and_unchanged(root, &sim, &[], "deny window");
    let apply = sim_run(
        root,
        &sim,
        &[
            "apply",
            "--yes",
            "--override-deny-window",
            "incident 4711: shift to APAC",
        ],
    );
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(apply.stdout.contains("incident 4711"), "{}", apply.all());
    let ledger =
        std::fs::read_to_string(root.join(".meridian-state/rollout.json")).expect("ledger");
    assert!(
        ledger.contains("incident 4711"),
        "the override is recorded:\n{ledger}"
    );
}

#[test]
fn a_dial_is_not_moved_back_within_the_flap_hold() {
    let (dir, sim, desired) = setup(0);
    let root = dir.path();
    want_https_dial(&desired, "ap-southeast-1", 75);
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    // Moving it straight back down is flapping.
    want_https_dial(&desired, "ap-southeast-1", 50);
    assert_blocked_and_unchanged(root, &sim, &[], "anti-flap");
}

#[test]
fn the_daemon_rolls_back_a_failing_revision_shows_it_and_does_not_retry_it() {
    use common::daemon::Daemon;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = root.join("sim");
    let run = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "10"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let mut repo = common::git::stepped_example(root, 4);
    let state = root.join("state");
    let daemon = Daemon::start(
        &sim,
        &[
            "--repo",
            &repo.url(),
            "--interval",
            "1s",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        None,
    );
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(Duration::from_secs(60), "the first revision", |s| {
        s["last_applied"]["revision"].as_str() == Some(first.as_str())
    });

    // Drain us-east-1 from the https listener; eu-central-1 fails mid-rollout.
    let ga = "desired-state/global-accelerator.yaml";
    let text = repo.read(ga);
    let https = text.find("- name: https").expect("https");
    let at = https + text[https..].find("trafficDial: 100").expect("dial");
    repo.write(
        ga,
        &format!(
            "{}trafficDial: 0{}",
            &text[..at],
            &text[at + "trafficDial: 100".len()..]
        ),
    );
    let second = repo.commit("drain us-east-1");
    repo.push(false);
    wait_until("step 1", Duration::from_secs(60), || {
        dial_writes(&sim, "us-east-1").last().map(|w| w.1) == Some(75)
    });
    daemon.wait_for(Duration::from_secs(30), "step 1 to bake", |s| {
        s["rollout_waiting"]
            .as_str()
            .is_some_and(|w| w.contains("baking"))
    });
    assert_eq!(daemon.metric("meridian_rollout_step"), 1.0);
    let down = sim_run(
        root,
        &sim,
        &["sim", "set-health", "eu-central-1", "unhealthy"],
    );
    assert_eq!(down.code, 0, "{}", down.all());
    let status = daemon.wait_for(Duration::from_secs(60), "the rollback", |s| {
        s["last_attempted"]["outcome"] == "rolled_back"
    });
    assert!(
        status["failed_revisions"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r == second.as_str())),
        "{status:#}"
    );
    assert!(
        status["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed its gates")),
        "{status:#}"
    );
    assert!(
        status["last_error"]["details"][0]
            .as_str()
            .is_some_and(|d| d.contains("eu-central-1")),
        "{status:#}"
    );
    assert_eq!(daemon.metric("meridian_revision_failed"), 1.0);
    assert!(daemon.metric("meridian_reconciles_total{outcome=\"rolled_back\"}") >= 1.0);
    let dials: Vec<u64> = dial_writes(&sim, "us-east-1").iter().map(|w| w.1).collect();
    assert_eq!(dials, vec![75, 100], "rolled back to the last good dial");

    // Several polls later: the failed revision is not tried again.
    let (_, writes) = call_totals(&sim);
    let fetches = daemon.metric("meridian_git_fetches_total{result=\"ok\"}");
    let started = Instant::now();
    while daemon.metric("meridian_git_fetches_total{result=\"ok\"}") < fetches + 3.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the daemon stopped polling"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.status()["last_attempted"]["outcome"], "rolled_back");

    assert_eq!(
        call_totals(&sim).1,
        writes,
        "no write for the failed revision"
    );

    // Health back and `meridian retry`: the running daemon rolls it out again.
    let up = sim_run(
        root,
        &sim,
        &["sim", "set-health", "eu-central-1", "healthy"],
    );
    assert_eq!(up.code, 0, "{}", up.all());
    let retry = common::meridian(
        root,
        &["retry", "--state-dir", state.to_str().expect("utf-8")],
    );
    assert_eq!(retry.code, 0, "{}", retry.all());
    daemon.wait_for(Duration::from_secs(90), "the retried revision", |s| {
        s["last_applied"]["revision"].as_str() == Some(second.as_str())
    });
    assert_eq!(dial_writes(&sim, "us-east-1").last().map(|w| w.1), Some(0));
    assert_eq!(daemon.metric("meridian_revision_failed"), 0.0);
}

/// A stand-in for Prometheus's HTTP API answering every instant query with
/// a recorded response whose sample is `value`; it counts the queries.
struct Prometheus {
    url: String,
    queries: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn prometheus(value: &'static str) -> Prometheus {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = queries.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
            }
            seen.lock().expect("lock").push(line.trim().to_owned());
            // Recorded from Prometheus 2.x: GET /api/v1/query?query=...
            let body = format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"job":"api","code":"5xx"}},"value":[1795670000.123,"{value}"]}}]}}}}"#
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Prometheus { url, queries }
}

fn with_prometheus_gate(desired: &Path, url: &str) {
    edit(
        desired,
        POLICIES,
        "healthGate: {minHealthyFraction: 0.9}",
        &format!(
            "healthGate:\n    minHealthyFraction: 0.9\n    prometheus: {{url: \"{url}\", query: 'sum(rate(http_requests_total{{code=~\"5..\"}}[5m])) / sum(rate(http_requests_total[5m]))', maxValue: 0.05}}"
        ),
    );
}

#[test]
fn a_prometheus_gate_passes_each_step_or_rolls_back() {
    // Error ratio 1%: every step's gate passes.
    let (dir, sim, desired) = setup(1);
    let root = dir.path();
    let healthy = prometheus("0.01");
    with_prometheus_gate(&desired, &healthy.url);
    want_https_dial(&desired, "us-east-1", 50);
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let dials: Vec<u64> = dial_writes(&sim, "us-east-1").iter().map(|w| w.1).collect();
    assert_eq!(dials, vec![75, 50]);
    let queries = healthy.queries.lock().expect("lock").clone();
    assert_eq!(
        queries.len(),
        2,
        "one query after each step's bake: {queries:?}"
    );
    assert!(
        queries[0].starts_with("GET /api/v1/query?query=sum%28rate"),
        "{queries:?}"
    );

    // Error ratio 20%: the first gate fails and the step is rolled back.
    let (dir, sim, desired) = setup(1);
    let root = dir.path();
    let failing = prometheus("0.2");
    with_prometheus_gate(&desired, &failing.url);
    want_https_dial(&desired, "us-east-1", 50);
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains("= 0.2, above the maximum 0.05"),
        "{}",
        apply.all()
    );
    let dials: Vec<u64> = dial_writes(&sim, "us-east-1").iter().map(|w| w.1).collect();
    assert_eq!(dials, vec![75, 100]);
}

#[test]
fn an_expired_override_is_reverted_progressively() {
    let (dir, sim, _desired) = setup(1);
    let root = dir.path();
    // Break glass: us-east-1 drained by hand, held for a few seconds.
    let set = sim_run(root, &sim, &["override", "set", "api", "--until", "4s"]);
    assert_eq!(set.code, 0, "{}", set.all());
    let by_hand = sim_run(
        root,
        &sim,
        &[
            "sim",
            "set-dial",
            "api",
            "us-east-1",
            "0",
            "--listener",
            "https",
        ],
    );
    assert_eq!(by_hand.code, 0, "{}", by_hand.all());
    let by_hand_writes = dial_writes(&sim, "us-east-1");
    assert_eq!(
        by_hand_writes.iter().map(|w| w.1).collect::<Vec<_>>(),
        vec![0]
    );
    let held = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(held.code, 0, "{}", held.all());
    assert_eq!(
        dial_writes(&sim, "us-east-1"),
        by_hand_writes,
        "held while overridden"
    );

    std::thread::sleep(Duration::from_millis(4_200));
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let writes = dial_writes(&sim, "us-east-1")[1..].to_vec();
    let dials: Vec<u64> = writes.iter().map(|w| w.1).collect();
    // Back to 100 in the policy's 25-point steps, baked, not in one jump.
    assert_eq!(dials, vec![25, 50, 75, 100], "{writes:?}");
    assert_baked(&writes, 1_000);
}

#[test]
fn draining_the_region_of_client_scoped_data_is_blocked_at_plan_time() {
    // The example as it is: US clients' records stay in North America.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = root.join("sim");
    let desired = common::copy_example_verbatim(root);
    edit(
        &desired,
        POLICIES,
        "{cron: \"0 16 * * FRI\", durationMinutes: 3840, timeZone: UTC}",
        common::NEVER_OPEN_WINDOW,
    );
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let (_, writes) = call_totals(&sim);
    // Draining us-east-1 would send US clients on to the next closest group
    // with a dial above 0: Frankfurt.
    want_https_dial(&desired, "us-east-1", 0);
    let plan = sim_run(root, &sim, &["plan"]);
    assert_eq!(plan.code, 3, "{}", plan.all());
    assert!(
        plan.stderr.contains("DataResidencyPolicy/us-customer-data")
            && plan.stderr.contains("clients at us-east-1")
            && plan.stderr.contains("eu-central-1"),
        "{}",
        plan.all()
    );
    let apply = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 3, "{}", apply.all());
    assert_eq!(call_totals(&sim).1, writes, "nothing was written");
}
