//! Concurrent changes between observation and apply, through the real `gcp`
//! provider and the Compute Engine sandbox. The engine is driven in-process
//! so the out-of-band change lands exactly between its observation and its
//! write.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use common::aws::Server as Sandbox;
use common::gcp::{PROJECT, compute, gcp, set_scaler};
use meridian::apply::{Outcome, Progress};
use meridian::plan::Plan;
use meridian::providers::{ProviderOptions as EngineOptions, Providers};
use meridian::rollout::{self, LedgerStore, RolloutEvents, RunEnd, RunOptions};
use meridian_provider::{Change, Resource};

struct Quiet;

impl Progress for Quiet {
    fn started(&self, _: &Change, _: usize, _: usize) {}
    fn finished(&self, _: &Outcome, _: usize, _: usize) {}
}

/// Keeps the changes the rollout starts, to see what each step planned.
#[derive(Default)]
struct Started(std::sync::Mutex<Vec<Change>>);

impl Progress for Started {
    fn started(&self, change: &Change, _: usize, _: usize) {
        self.0.lock().expect("lock").push(change.clone());
    }
    fn finished(&self, _: &Outcome, _: usize, _: usize) {}
}

impl RolloutEvents for Quiet {
    fn step(&self, _: usize, _: bool, _: &Plan) {}
    fn waiting(&self, _: &str) {}
}

fn setup() -> (tempfile::TempDir, Sandbox) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let run = common::sim_run(
        dir.path(),
        &sim,
        &["sim", "faults", "--deploy-delay-ms", "10"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let sandbox = common::aws::sandbox(&sim);
    let folder = dir.path().join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(
        folder.join("providers.yaml"),
        format!(
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: gcp-prod}}\nspec:\n  type: gcp\n  project: {PROJECT}\n  endpoints: {{compute: \"http://{}\"}}\n",
            sandbox.address
        ),
    )
    .expect("write");
    std::fs::copy(
        common::example_dir().join("gcp-load-balancing.yaml"),
        folder.join("gcp-load-balancing.yaml"),
    )
    .expect("copy");
    let apply = gcp(dir.path(), &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    (dir, sandbox)
}

/// Edits the desired scaler of one backend.
fn want_scaler(dir: &Path, line_before: &str, from: &str, to: &str) {
    let file = dir.join("desired-state/gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    let anchor = text.find(line_before).expect("anchor");
    let at = anchor + text[anchor..].find(from).expect("value");
    let edited = format!("{}{to}{}", &text[..at], &text[at + from.len()..]);
    std::fs::write(&file, edited).expect("write");
}

fn scaler(sandbox: &Sandbox, group: &str) -> f64 {
    let (status, live) = compute(sandbox, "GET", "backendServices/app-backend", None);
    assert_eq!(status, 200, "{live}");
    live["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["group"].as_str().is_some_and(|g| g.ends_with(group)))
        .and_then(|b| b["capacityScaler"].as_f64())
        .expect("backend")
}

fn before_scaler(change: &Change) -> Option<f64> {
    match &change.before {
        Some(Resource::Backend(b)) => Some(b.capacity_scaler),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_changed_after_observation_is_re_observed_and_re_planned_never_overwritten() {
    let (dir, sandbox) = setup();
    let dir = dir.path();
    want_scaler(dir, "app-us", "capacityScaler: 1.0", "capacityScaler: 0.5");
    let state = meridian::model::load_dir(&dir.join("desired-state")).expect("valid");
    let desired = meridian::desired::expand(&state);
    let providers = Providers::build(&state, &EngineOptions::default())
        .await
        .expect("providers");
    let observation = meridian::observe::observe(&providers, &desired).await;
    let plan = meridian::plan::make(&state, &desired, &observation, None);
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    assert_eq!(before_scaler(&plan.changes[0]), Some(1.0));

    // Someone changes the same backend after meridian observed it.
    set_scaler(&sandbox, "app-backend", "app-us", 0.8);

    // The change as planned is refused: the other writer's value stands.
    let stop = Arc::new(AtomicBool::new(false));
    let report = meridian::apply::apply(&plan, &providers, &Quiet, &stop).await;
    let failures = report.failures();
    assert_eq!(failures.len(), 1);
    let error = failures[0].error.as_ref().expect("error");
    assert!(error.is_conflict(), "{error}");
    assert!(
        error.message.contains("changed since it was observed") && error.message.contains("0.8"),
        "{error}"
    );
    assert_eq!(scaler(&sandbox, "app-us"), 0.8, "not overwritten blindly");

    // The daemon's rollout driver (no confirmed plan to hold to) observes
    // again and plans the step from what is live now: 0.8 → 0.5.
    let store = LedgerStore::new(&dir.join("state"));
    let started = Started::default();
    let (end, outcomes) = rollout::run(
        &state,
        &desired,
        &state.digest,
        &providers,
        &store,
        &started,
        &Quiet,
        &stop,
        &RunOptions {
            wait: true,
            deny_window_override: None,
            max_conflicts: 3,
            contract: None,
        },
        None,
    )
    .await
    .expect("run");
    assert_eq!(end, RunEnd::Done);
    assert_eq!(outcomes.len(), 1);
    let started = started.0.lock().expect("lock");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].address, outcomes[0].address);
    assert_eq!(
        before_scaler(&started[0]),
        Some(0.8),
        "the fresh step starts from what the other writer left"
    );
    assert_eq!(scaler(&sandbox, "app-us"), 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_change_to_another_backend_survives_a_backend_patch() {
    let (dir, sandbox) = setup();
    let dir = dir.path();
    want_scaler(dir, "app-us", "capacityScaler: 1.0", "capacityScaler: 0.5");
    let state = meridian::model::load_dir(&dir.join("desired-state")).expect("valid");
    let desired = meridian::desired::expand(&state);
    let providers = Providers::build(&state, &EngineOptions::default())
        .await
        .expect("providers");
    let observation = meridian::observe::observe(&providers, &desired).await;
    let plan = meridian::plan::make(&state, &desired, &observation, None);
    assert_eq!(plan.changes.len(), 1);

    // Another writer changes a different backend of the same service: the
    // service's fingerprint moves, the backend list meridian observed is stale.
    set_scaler(&sandbox, "app-backend", "app-eu", 0.9);

    let stop = Arc::new(AtomicBool::new(false));
    let report = meridian::apply::apply(&plan, &providers, &Quiet, &stop).await;
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert_eq!(scaler(&sandbox, "app-us"), 0.5, "meridian's change landed");
    assert_eq!(
        scaler(&sandbox, "app-eu"),
        0.9,
        "the other writer's change was not overwritten by a stale backend list"
    );
    // It is drift now, seen and reported by the next plan.
    let drift = gcp(dir, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(drift.stdout.contains("app-eu"), "{}", drift.all());
}
