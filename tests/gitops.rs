//! GitOps end to end: real repositories, a bare remote over file://, the real
//! `meridian run` daemon against the simulated cloud, its HTTP endpoints and
//! webhooks, and `meridian diff` previews.

mod common;

use std::path::Path;
use std::time::Duration;

use common::daemon::Daemon;
use common::git::{Repo, example_files};
use common::{normalized, sim_run};

const GA: &str = "desired-state/global-accelerator.yaml";
const APAC_DIAL: &str = "trafficDial: 50            # APAC still warming up";
const SECRET: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(30);

fn repo(root: &Path) -> Repo {
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let mut files = files;
    files.push(("README.md", "# traffic\n".to_owned()));
    Repo::new(root, &files)
}

fn sim(root: &Path) -> std::path::PathBuf {
    let sim = root.join("sim");
    let run = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]);
    assert_eq!(run.code, 0, "{}", run.all());
    sim
}

fn applied(status: &serde_json::Value) -> Option<&str> {
    status["last_applied"]["revision"].as_str()
}

fn apac_dial(sim: &Path) -> u64 {
    let world = common::world(sim);
    let listeners = world["listeners"].as_object().expect("listeners");
    world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
        .find(|g| g["spec"]["region"] == "ap-southeast-1" && listeners[g["listener_arn"].as_str().expect("arn")]["spec"]["portRanges"][0]["from"] == 443 && g["listener_arn"].as_str().is_some_and(|l| world["accelerators"].as_object().expect("a").values().any(|a| a["name"] == "api" && l.starts_with(a["arn"].as_str().expect("arn")))))
        .and_then(|g| g["spec"]["trafficDial"].as_u64())
        .expect("api https ap-southeast-1 group")
}

fn start(root: &Path, repo: &Repo, sim: &Path, interval: &str) -> Daemon {
    let state = root.join("state");
    Daemon::start(
        sim,
        &[
            "--repo",
            &repo.url(),
            "--interval",
            interval,
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        Some(SECRET),
    )
}

fn push_event(branch: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"ref": format!("refs/heads/{branch}"), "after": "0000000000000000000000000000000000000000"})).expect("json")
}

fn signed(daemon: &Daemon, body: &[u8], secret: &str, delivery: &str) -> common::daemon::Response {
    let signature = meridian::daemon::webhook::Secret::new(secret.as_bytes())
        .expect("secret")
        .sign(body);
    daemon.request(
        "POST",
        "/webhook/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

#[test]
fn a_pushed_commit_is_applied_within_one_poll_interval() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let daemon = start(root, &repo, &sim, "1s");
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision to be applied", |s| {
        applied(s) == Some(first.as_str())
    });
    assert_eq!(daemon.get("/readyz").status, 200);
    assert_eq!(daemon.get("/healthz").status, 200);
    assert_eq!(apac_dial(&sim), 50);

    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 80"));
    let second = repo.commit("shift APAC to 80");
    repo.push(false);
    let status = daemon.wait_for(WAIT, "the dial commit to be applied", |s| {
        applied(s) == Some(second.as_str())
    });
    assert_eq!(status["last_attempted"]["trigger"], "poll");
    assert_eq!(status["last_attempted"]["changes_applied"], 1);
    assert_eq!(apac_dial(&sim), 80);
}

#[test]
fn a_reconcile_that_applies_a_commit_reads_the_fleet_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let daemon = start(root, &repo, &sim, "1s");
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision to be applied", |s| {
        applied(s) == Some(first.as_str())
    });
    let calls = |operation: &str| {
        common::world(&sim)["calls"][operation]["ok"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = (
        calls("ListAccelerators"),
        calls("DescribeEndpointGroup"),
        calls("UpdateEndpointGroup"),
    );

    // accounts-eu has no traffic policy: its change is one ungated step.
    let text = repo.read(GA);
    let west = "- region: eu-west-1\n          trafficDial: 100";
    assert_eq!(text.matches(west).count(), 1);
    repo.write(
        GA,
        &text.replace(west, "- region: eu-west-1\n          trafficDial: 70"),
    );
    let second = repo.commit("accounts-eu: 70% in Ireland");
    repo.push(false);
    daemon.wait_for(WAIT, "the dial commit to be applied", |s| {
        applied(s) == Some(second.as_str())
    });
    // Polls that find no new commit read nothing; the reconcile of the new
    // commit observes once, plans, and its rollout's step runs on that
    // same observation (one describe of the group it writes, no second
    // observation).
    assert_eq!(calls("ListAccelerators") - before.0, 1);
    assert_eq!(calls("DescribeEndpointGroup") - before.1, 1);
    assert_eq!(calls("UpdateEndpointGroup") - before.2, 1);
}

#[test]
fn a_signed_webhook_triggers_an_immediate_fetch_and_forgeries_do_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut repo = repo(root);
    let sim = sim(root);
    // Polling once an hour: only the webhook can explain a prompt apply.
    let daemon = start(root, &repo, &sim, "1h");
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });

    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 30"));
    let second = repo.commit("drain APAC to 30");
    repo.push(false);

    let fetches = daemon.metric("meridian_git_fetches_total{result=\"ok\"}");
    let body = push_event("main");
    let unsigned = daemon.request(
        "POST",
        "/webhook/github",
        &[("X-GitHub-Event", "push")],
        &body,
    );
    assert_eq!(unsigned.status, 401, "{unsigned:?}");
    let forged = signed(&daemon, &body, "not the secret", "d-1");
    assert_eq!(forged.status, 401, "{forged:?}");
    let tampered = {
        let signature = meridian::daemon::webhook::Secret::new(SECRET.as_bytes())
            .expect("secret")
            .sign(&body);
        daemon.request(
            "POST",
            "/webhook/github",
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &signature),
            ],
            &push_event("mainx"),
        )
    };
    assert_eq!(tampered.status, 401, "{tampered:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        daemon.metric("meridian_git_fetches_total{result=\"ok\"}"),
        fetches,
        "a refused webhook causes no fetch"
    );
    assert_eq!(applied(&daemon.status()), Some(first.as_str()));
    assert_eq!(
        daemon.metric("meridian_webhook_requests_total{result=\"unauthorized\"}"),
        3.0
    );

    let other_branch = signed(&daemon, &push_event("feature"), SECRET, "d-2");
    assert_eq!(other_branch.status, 202);
    assert!(other_branch.body.contains("ignored"), "{other_branch:?}");

    let accepted = signed(&daemon, &body, SECRET, "d-3");
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let status = daemon.wait_for(
        Duration::from_secs(10),
        "the webhook to trigger the apply",
        |s| applied(s) == Some(second.as_str()),
    );
    assert_eq!(status["last_attempted"]["trigger"], "webhook");
    assert_eq!(apac_dial(&sim), 30);

    let reconciles = status["reconciles"].as_u64().expect("count");
    let (_, writes) = common::call_totals(&sim);
    let replay = signed(&daemon, &body, SECRET, "d-3");
    assert_eq!(replay.status, 200, "{replay:?}");
    assert!(replay.body.contains("duplicate"), "{replay:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        daemon.status()["reconciles"].as_u64(),
        Some(reconciles),
        "a replayed delivery triggers nothing"
    );
    assert_eq!(common::call_totals(&sim).1, writes, "and applies nothing");

    let generic_body = br#"{"ref":"refs/heads/main"}"#;
    let generic_signature = meridian::daemon::webhook::Secret::new(SECRET.as_bytes())
        .expect("secret")
        .sign(generic_body);
    let generic = daemon.request(
        "POST",
        "/webhook/generic",
        &[("X-Meridian-Signature-256", &generic_signature)],
        generic_body,
    );
    assert_eq!(generic.status, 202, "{generic:?}");
    let generic_forged = daemon.request(
        "POST",
        "/webhook/generic",
        &[("X-Meridian-Signature-256", "sha256=00")],
        generic_body,
    );
    assert_eq!(generic_forged.status, 401);
}

#[test]
fn an_invalid_commit_is_not_applied_and_the_next_good_one_is() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let daemon = start(root, &repo, &sim, "500ms");
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });

    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 150"));
    let bad = repo.commit("typo: dial 150");
    repo.push(false);
    let status = daemon.wait_for(WAIT, "the invalid revision to be attempted", |s| {
        s["last_attempted"]["revision"] == bad.as_str()
    });
    assert_eq!(status["last_attempted"]["outcome"], "invalid");
    assert_eq!(
        applied(&status),
        Some(first.as_str()),
        "the last good revision stays live"
    );
    let details: Vec<&str> = status["last_error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert!(
        details.iter().any(|d| d.starts_with("desired-state/global-accelerator.yaml:38:24: spec.listeners[0].endpointGroups[2].trafficDial: must be from 0 to 100, got 150")),
        "{details:#?}"
    );
    assert_eq!(apac_dial(&sim), 50);
    assert!(
        status["failed_revisions"]
            .as_array()
            .expect("failed")
            .iter()
            .any(|r| r == bad.as_str())
    );
    let reconciles = daemon.metric("meridian_reconciles_total{outcome=\"invalid\"}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        daemon.metric("meridian_reconciles_total{outcome=\"invalid\"}"),
        reconciles,
        "the bad revision is not retried"
    );

    repo.write(
        GA,
        &repo.read(GA).replace("trafficDial: 150", "trafficDial: 70"),
    );
    let good = repo.commit("fix: dial 70");
    repo.push(false);
    let status = daemon.wait_for(WAIT, "the fixed revision", |s| {
        applied(s) == Some(good.as_str())
    });
    assert!(status["last_error"].is_null(), "{status:#}");
    assert_eq!(apac_dial(&sim), 70);
}

#[test]
fn a_force_push_of_unrelated_history_is_followed_and_an_emptied_folder_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let daemon = start(root, &repo, &sim, "500ms");
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });

    // Rewrite history: a new root commit with a different dial, force-pushed.
    repo.orphan();
    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 90"));
    let rewritten = repo.commit("rewritten history");
    assert!(
        repo.git(&["rev-list", "--max-parents=0", "HEAD"])
            .contains(&rewritten),
        "an unrelated root commit"
    );
    repo.push(true);
    daemon.wait_for(WAIT, "the rewritten history", |s| {
        applied(s) == Some(rewritten.as_str())
    });
    assert_eq!(apac_dial(&sim), 90);
    let before = normalized(&sim);

    // Empty the folder: refused, nothing deleted.
    repo.remove("desired-state");
    let emptied = repo.commit("remove everything");
    repo.push(false);
    let status = daemon.wait_for(WAIT, "the emptied revision", |s| {
        s["last_attempted"]["revision"] == emptied.as_str()
    });
    assert_eq!(status["last_attempted"]["outcome"], "invalid", "{status:#}");
    assert!(
        status["last_error"]["message"]
            .as_str()
            .expect("message")
            .contains("does not exist"),
        "{status:#}"
    );
    assert_eq!(applied(&status), Some(rewritten.as_str()));
    assert_eq!(normalized(&sim), before, "nothing was deleted");

    // A folder with only non-YAML files is refused the same way.
    repo.write("desired-state/NOTES.txt", "nothing here\n");
    let notes_only = repo.commit("only notes");
    repo.push(false);
    let status = daemon.wait_for(WAIT, "the notes-only revision", |s| {
        s["last_attempted"]["revision"] == notes_only.as_str()
    });
    assert!(
        status["last_error"]["message"]
            .as_str()
            .expect("message")
            .contains("holds no *.yaml"),
        "{status:#}"
    );
    assert_eq!(normalized(&sim), before);
}

#[test]
fn metrics_parse_with_the_prometheus_text_parser() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let repo = repo(root);
    let sim = sim(root);
    let daemon = start(root, &repo, &sim, "1s");
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });
    let metrics = daemon.get("/metrics");
    assert_eq!(metrics.status, 200);
    let file = root.join("metrics.txt");
    std::fs::write(&file, &metrics.body).expect("write");
    let python = std::env::var("MERIDIAN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    families[family.name] = {"type": family.type, "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(families))
"#;
    let output = std::process::Command::new(&python)
        .args(["-c", script, file.to_str().expect("utf-8")])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "the Prometheus parser failed (scripts/test.sh installs prometheus-client into .venv and sets MERIDIAN_TEST_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let families: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("parser output");
    let sample = |family: &str, name: &str, labels: serde_json::Value| -> f64 {
        families[family]["samples"]
            .as_array()
            .unwrap_or_else(|| panic!("{family} missing: {families:#}"))
            .iter()
            .find(|s| {
                s[0] == name
                    && labels
                        .as_object()
                        .expect("labels")
                        .iter()
                        .all(|(k, v)| &s[1][k] == v)
            })
            .and_then(|s| s[2].as_f64())
            .unwrap_or_else(|| panic!("{name} {labels} missing"))
    };
    assert_eq!(
        families["meridian_reconcile_duration_seconds"]["type"],
        "histogram"
    );
    assert!(
        sample(
            "meridian_reconcile_duration_seconds",
            "meridian_reconcile_duration_seconds_count",
            serde_json::json!({})
        ) >= 1.0
    );
    assert_eq!(
        sample(
            "meridian_reconciles",
            "meridian_reconciles_total",
            serde_json::json!({"outcome": "applied"})
        ),
        1.0
    );
    let applied_at = sample(
        "meridian_last_applied_revision_timestamp_seconds",
        "meridian_last_applied_revision_timestamp_seconds",
        serde_json::json!({}),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        applied_at > now - 300.0 && applied_at <= now + 1.0,
        "a recent timestamp: {applied_at}"
    );
    assert_eq!(
        sample(
            "meridian_drifted_resources",
            "meridian_drifted_resources",
            serde_json::json!({})
        ),
        0.0
    );
    assert_eq!(
        sample(
            "meridian_pending_changes",
            "meridian_pending_changes",
            serde_json::json!({})
        ),
        0.0
    );
    assert_eq!(
        sample(
            "meridian_api_calls",
            "meridian_api_calls_total",
            serde_json::json!({"provider": "aws-global", "operation": "CreateAccelerator", "outcome": "ok"})
        ),
        2.0
    );
    assert!(
        sample(
            "meridian_api_calls",
            "meridian_api_calls_total",
            serde_json::json!({"provider": "gcp-prod", "operation": "backendServices.list", "outcome": "ok"})
        ) >= 1.0
    );
    assert_eq!(families["meridian_retries"]["type"], "counter");
}

#[test]
fn sigterm_during_an_apply_exits_cleanly_and_a_restart_converges_without_duplicates() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let repo = repo(root);
    let clean = root.join("clean");
    assert_eq!(
        sim_run(root, &clean, &["sim", "faults", "--deploy-delay-ms", "50"]).code,
        0
    );
    assert_eq!(sim_run(&repo.work, &clean, &["apply", "--yes"]).code, 0);

    let sim = sim(root);
    // Slow calls, so SIGTERM arrives with changes in flight.
    assert_eq!(
        sim_run(root, &sim, &["sim", "faults", "--latency-ms", "150"]).code,
        0
    );
    let mut daemon = start(root, &repo, &sim, "1h");
    let started = std::time::Instant::now();
    loop {
        let writes = common::call_totals(&sim).1;
        if writes >= 3 {
            break;
        }
        assert!(started.elapsed() < WAIT, "the apply never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(daemon.terminate(), 0, "a clean exit on SIGTERM");
    let status = meridian::daemon::status::Status::load(&root.join("state"))
        .expect("read")
        .expect("status persisted");
    let attempt = status
        .last_attempted
        .expect("the interrupted attempt is recorded");
    assert_eq!(
        attempt.outcome,
        meridian::daemon::status::Outcome::Interrupted,
        "{:?}",
        attempt
    );
    assert!(
        attempt.changes_applied > 0 && attempt.changes_applied < 40,
        "{attempt:?}"
    );
    assert_ne!(normalized(&sim), normalized(&clean), "stopped part-way");

    assert_eq!(
        sim_run(
            root,
            &sim,
            &["sim", "faults", "--clear", "--deploy-delay-ms", "50"]
        )
        .code,
        0
    );
    let daemon = start(root, &repo, &sim, "1h");
    let first = repo.git(&["rev-parse", "HEAD"]);
    let status = daemon.wait_for(WAIT, "the restart to converge", |s| {
        applied(s) == Some(first.as_str())
    });
    assert_eq!(status["last_attempted"]["trigger"], "startup");
    assert_eq!(
        normalized(&sim),
        normalized(&clean),
        "converged with no duplicates"
    );
}

#[test]
fn a_branch_that_disappears_keeps_the_last_applied_state_and_reports_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let repo = repo(root);
    repo.git(&[
        "push",
        "-q",
        repo.remote.to_str().expect("utf-8"),
        "main:release",
    ]);
    let sim = sim(root);
    let state = root.join("state");
    let daemon = Daemon::start(
        &sim,
        &[
            "--repo",
            &repo.url(),
            "--branch",
            "release",
            "--interval",
            "300ms",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        None,
    );
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the release branch to be applied", |s| {
        applied(s) == Some(first.as_str())
    });
    let before = normalized(&sim);

    repo.git(&[
        "push",
        "-q",
        repo.remote.to_str().expect("utf-8"),
        "--delete",
        "release",
    ]);
    let status = daemon.wait_for(WAIT, "the missing branch to be reported", |s| {
        s["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("branch `release` does not exist"))
    });
    assert_eq!(applied(&status), Some(first.as_str()));
    assert_eq!(
        normalized(&sim),
        before,
        "nothing changes when the branch disappears"
    );
    assert!(daemon.metric("meridian_git_fetches_total{result=\"ok\"}") >= 1.0);
    assert_eq!(
        daemon.get("/webhook/github").status,
        405,
        "webhooks take POST only"
    );
    let disabled = daemon.request("POST", "/webhook/github", &[], b"{}");
    assert_eq!(
        disabled.status, 404,
        "webhooks are off without a secret: {disabled:?}"
    );
}

#[test]
fn the_git_protocol_is_read_through_a_real_git_daemon() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut s = repo(root);
    let base = s.git(&["rev-parse", "HEAD"]);
    s.write(GA, &s.read(GA).replace(APAC_DIAL, "trafficDial: 40"));
    let head = s.commit("APAC to 40");
    s.push(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    // Run git-daemon itself (not the `git daemon` wrapper), so killing it stops the server.
    let exec_path = std::process::Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("git --exec-path");
    let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
    let mut git_daemon = std::process::Command::new(Path::new(&exec_path).join("git-daemon"))
        .args([
            "--export-all",
            "--reuseaddr",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", root.display()),
            root.to_str().expect("utf-8"),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon starts");
    let url = format!("git://127.0.0.1:{port}/remote.git");
    let sim = sim(root);
    let state = root.join("state");
    let mut run = sim_run(
        root,
        &sim,
        &[
            "diff",
            "--repo",
            &url,
            "--base",
            &base,
            "--head",
            &head,
            "--format",
            "json",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
    );
    for _ in 0..50 {
        if run.code != 1 || !run.stderr.contains("fetching") {
            break;
        }
        // git daemon may still be starting.
        std::thread::sleep(Duration::from_millis(100));
        run = sim_run(
            root,
            &sim,
            &[
                "diff",
                "--repo",
                &url,
                "--base",
                &base,
                "--head",
                &head,
                "--format",
                "json",
                "--state-dir",
                state.to_str().expect("utf-8"),
            ],
        );
    }
    let _ = git_daemon.kill();
    let _ = git_daemon.wait();
    assert_eq!(run.code, 2, "{}", run.all());
    let preview: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(preview["repository"], url.as_str());
    assert_eq!(preview["head"], head.as_str());
    assert_eq!(preview["files"][0]["path"], GA);
}

#[test]
fn with_an_invalid_head_drift_is_still_corrected_after_a_restart_and_the_error_stays_visible() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let state = root.join("state");
    let args = [
        "--repo",
        &repo.url(),
        "--interval",
        "300ms",
        "--drift-interval",
        "1s",
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    let mut daemon = Daemon::start(&sim, &args, None);
    let good = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the good revision", |s| {
        applied(s) == Some(good.as_str())
    });
    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 150"));
    let bad = repo.commit("bad dial");
    repo.push(false);
    daemon.wait_for(WAIT, "the bad revision to be refused", |s| {
        s["last_attempted"]["revision"] == bad.as_str()
    });
    assert_eq!(daemon.terminate(), 0);

    // Out-of-band change while the daemon is down; the head is still bad.
    assert_eq!(
        sim_run(
            root,
            &sim,
            &[
                "sim",
                "set-dial",
                "api",
                "us-east-1",
                "10",
                "--listener",
                "https"
            ]
        )
        .code,
        0
    );
    let us_dial = || {
        common::world(&sim)["endpoint_groups"]
            .as_object()
            .expect("groups")
            .values()
            .filter(|g| g["spec"]["region"] == "us-east-1")
            .map(|g| g["spec"]["trafficDial"].as_u64().unwrap_or(0))
            .min()
    };
    let daemon = Daemon::start(&sim, &args, None);
    // Wait for the effect, not only for the status: an empty drift list can
    // precede the first drift check after a restart.
    let status = daemon.wait_for(
        WAIT,
        "drift to be corrected against the last good revision",
        |s| {
            s["reconciles"].as_u64().unwrap_or(0) >= 1
                && s["drift"].as_array().is_some_and(|d| d.is_empty())
                && s["last_attempted"]["revision"] == good.as_str()
                && us_dial() == Some(100)
        },
    );
    assert_eq!(applied(&status), Some(good.as_str()));
    assert!(
        status["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is invalid")),
        "the head's error stays visible: {status:#}"
    );
    assert_eq!(us_dial(), Some(100), "the out-of-band dial was restored");
}

#[test]
fn drift_that_cannot_be_corrected_shows_in_status_and_gauges() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let repo = repo(root);
    let sim = sim(root);
    let state = root.join("state");
    let daemon = Daemon::start(
        &sim,
        &[
            "--repo",
            &repo.url(),
            "--interval",
            "1h",
            "--drift-interval",
            "500ms",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        None,
    );
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });
    assert_eq!(
        sim_run(
            root,
            &sim,
            &[
                "sim",
                "set-dial",
                "api",
                "eu-central-1",
                "20",
                "--listener",
                "https"
            ]
        )
        .code,
        0
    );
    assert_eq!(
        sim_run(
            root,
            &sim,
            &["sim", "faults", "--fail-operation", "UpdateEndpointGroup"]
        )
        .code,
        0
    );
    let status = daemon.wait_for(WAIT, "the failed correction", |s| {
        s["last_attempted"]["outcome"] == "failed"
    });
    let drift = status["drift"].as_array().expect("drift");
    assert_eq!(drift.len(), 1, "{status:#}");
    assert_eq!(
        drift[0]["address"],
        "GlobalAccelerator[api].listener[https].endpointGroup[eu-central-1]"
    );
    assert_eq!(drift[0]["fields"][0], "trafficDial: 20 → 100");
    assert_eq!(daemon.metric("meridian_drifted_resources"), 1.0);
    assert_eq!(daemon.metric("meridian_pending_changes"), 1.0);
    assert!(daemon.metric("meridian_reconciles_total{outcome=\"failed\"}") >= 1.0);
    assert!(daemon.metric("meridian_api_calls_total{provider=\"aws-global\",operation=\"UpdateEndpointGroup\",outcome=\"error\"}") >= 1.0);

    assert_eq!(
        sim_run(
            root,
            &sim,
            &["sim", "faults", "--clear", "--deploy-delay-ms", "50"]
        )
        .code,
        0
    );
    daemon.wait_for(WAIT, "the correction once the cloud recovers", |s| {
        s["last_attempted"]["outcome"] == "applied"
            && s["drift"].as_array().is_some_and(|d| d.is_empty())
    });
    assert_eq!(daemon.metric("meridian_drifted_resources"), 0.0);
}

#[test]
fn a_revision_blocked_only_by_live_health_is_retried_until_health_returns() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let daemon = start(root, &repo, &sim, "1s");
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });
    // eu-central-1 goes unhealthy; then a commit drains us-east-1 on the
    // api listener. With every region healthy that leaves two serving
    // (`minServingRegions: 2`); now it would leave one.
    let down = sim_run(
        root,
        &sim,
        &["sim", "set-health", "eu-central-1", "unhealthy"],
    );
    assert_eq!(down.code, 0, "{}", down.all());
    const US: &str =
        "        - region: us-east-1\n          trafficDial: 100\n          capacityRps: 24000";
    let text = repo.read(GA);
    assert!(text.contains(US), "the example's api us-east-1 group");
    repo.write(
        GA,
        &text.replacen(US, &US.replace("trafficDial: 100", "trafficDial: 0"), 1),
    );
    let blocked = repo.commit("drain us-east-1");
    repo.push(false);
    let status = daemon.wait_for(WAIT, "the blocked revision to be retried", |s| {
        s["last_attempted"]["revision"] == blocked.as_str()
            && s["retrying"]["attempts"].as_u64().is_some_and(|n| n >= 2)
    });
    assert_eq!(
        status["last_attempted"]["outcome"], "retrying",
        "{status:#}"
    );
    let reason = status["retrying"]["reason"].as_str().expect("reason");
    assert!(reason.contains("waits for health"), "{reason}");
    assert!(
        status["retrying"]["next_attempt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{status:#}"
    );
    assert!(
        status["retrying"]["next_attempt_unix"]
            .as_f64()
            .expect("unix")
            > 0.0,
        "{status:#}"
    );
    assert!(
        !status["failed_revisions"]
            .as_array()
            .expect("failed")
            .iter()
            .any(|r| r == blocked.as_str()),
        "never marked failed: {status:#}"
    );
    assert_eq!(daemon.metric("meridian_revision_failed"), 0.0);
    assert!(daemon.metric("meridian_next_attempt_timestamp_seconds") > 0.0);
    assert_eq!(
        common::dial(&sim, "api", 443, "us-east-1"),
        100,
        "nothing moved while blocked"
    );

    // Health returns: the same revision applies without a new commit.
    let up = sim_run(
        root,
        &sim,
        &["sim", "set-health", "eu-central-1", "healthy"],
    );
    assert_eq!(up.code, 0, "{}", up.all());
    let status = daemon.wait_for(WAIT, "the retried revision", |s| {
        applied(s) == Some(blocked.as_str())
    });
    assert!(status["retrying"].is_null(), "{status:#}");
    assert_eq!(common::dial(&sim, "api", 443, "us-east-1"), 0);
}
