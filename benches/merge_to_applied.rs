//! Merge-to-applied latency of `meridian run`, by polling and by webhook.
//!
//! Builds a real repository with a bare remote, starts the daemon against the
//! simulated cloud, then repeatedly pushes a traffic-dial change and measures
//! the time from the push to `/status` reporting the revision as applied.
//! Run with `cargo bench --bench merge_to_applied`; results go to stdout and
//! are recorded in docs/gitops.md. Timing lives here, never in pass/fail tests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::git::{Repo, example_files};

const SECRET: &str = "bench-secret";
const ROUNDS: usize = 9;
const GA: &str = "desired-state/global-accelerator.yaml";

fn measure(mode: &str, interval: &str, rounds: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let mut repo = Repo::new(root, &files);
    let sim = root.join("sim");
    assert_eq!(
        common::sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]).code,
        0
    );
    let state = root.join("state");
    let daemon = Daemon::start(
        &sim,
        &[
            "--repo",
            &repo.url(),
            "--interval",
            interval,
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        Some(SECRET),
    );
    let first = repo.git(&["rev-parse", "HEAD"]);
    daemon.wait_for(Duration::from_secs(60), "initial apply", |s| {
        s["last_applied"]["revision"] == first.as_str()
    });
    let secret = meridian::daemon::webhook::Secret::new(SECRET.as_bytes()).expect("secret");
    let mut samples = Vec::new();
    let mut dial = 50;
    for round in 0..rounds {
        let next = if dial == 50 { 60 } else { 50 };
        repo.write(
            GA,
            &repo.read(GA).replacen(
                &format!("trafficDial: {dial}            # APAC"),
                &format!("trafficDial: {next}            # APAC"),
                1,
            ),
        );
        dial = next;
        let revision = repo.commit(&format!("round {round}"));
        if mode == "poll" {
            // Pushes land at a random point of the poll cycle, as merges do;
            // otherwise every push would follow a poll and wait a full interval.
            std::thread::sleep(Duration::from_millis(fastrand::u64(0..5_000)));
        }
        repo.push(false);
        let pushed = Instant::now();
        if mode == "webhook" {
            let body =
                serde_json::to_vec(&serde_json::json!({"ref": "refs/heads/main"})).expect("json");
            let delivery = format!("bench-{round}");
            let response = daemon.request(
                "POST",
                "/webhook/github",
                &[
                    ("X-GitHub-Event", "push"),
                    ("X-GitHub-Delivery", &delivery),
                    ("X-Hub-Signature-256", &secret.sign(&body)),
                ],
                &body,
            );
            assert_eq!(response.status, 202, "{response:?}");
        }
        loop {
            if daemon.status()["last_applied"]["revision"] == revision.as_str() {
                samples.push(pushed.elapsed());
                break;
            }
            assert!(
                pushed.elapsed() < Duration::from_secs(120),
                "round {round} never applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    samples
}

fn report(mode: &str, interval: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{mode:<8} interval {interval:<4} n={} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms",
        samples.len(),
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    );
}

fn main() {
    // `cargo bench` passes `--bench`. Under `cargo test --all-targets` the
    // binary runs without it: one webhook round keeps the bench working
    // without spending the suite's time on measurements.
    if !std::env::args().any(|a| a == "--bench") {
        let webhook = measure("webhook", "1h", 1);
        report("webhook", "1h", webhook);
        return;
    }
    let poll = measure("poll", "5s", ROUNDS);
    report("poll", "5s", poll);
    let webhook = measure("webhook", "1h", ROUNDS);
    report("webhook", "1h", webhook);
}
