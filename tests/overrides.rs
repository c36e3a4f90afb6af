//! Break-glass overrides against the embedded simulated cloud, through the
//! real binary: a marker set by `meridian override set` holds a hand-made
//! traffic change until it expires; `drift` reports it and `apply` and the
//! daemon leave it alone, with the simulator's counters and state as judge.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::Daemon;
use common::git::{Repo, example_files};
use common::{call_totals, copy_example, sim_run, world};
use meridian_provider::{NAME_KEY, OVERRIDE_KEY};

const EU_GROUP: &str = "GlobalAccelerator[api].listener[https].endpointGroup[eu-central-1]";

/// The example's policies without its TrafficPolicy, so that an apply moves
/// a dial in one step instead of baking between steps: these tests are
/// about what is held, not about how fast it moves.
fn without_traffic_policy(policies: &str) -> String {
    let end = policies
        .find("\n---")
        .expect("the residency policy comes first");
    format!("{}\n", &policies[..end])
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let desired = copy_example(dir.path());
    let policies = desired.join("policies.yaml");
    let text = std::fs::read_to_string(&policies).expect("policies");
    std::fs::write(&policies, without_traffic_policy(&text)).expect("write");
    let sim = dir.path().join("sim");
    let run = sim_run(
        dir.path(),
        &sim,
        &["sim", "faults", "--deploy-delay-ms", "50"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let apply = sim_run(dir.path(), &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    (dir, sim)
}

/// The `api` accelerator in the simulated world.
fn api_accelerator(sim: &Path) -> serde_json::Value {
    world(sim)["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .find(|a| a["tags"][NAME_KEY] == "api")
        .cloned()
        .expect("the api accelerator")
}

/// The traffic dial of api / https / eu-central-1.
fn eu_dial(sim: &Path) -> u64 {
    let world = world(sim);
    let api = api_accelerator(sim);
    let arn = api["arn"].as_str().expect("arn");
    let https = world["listeners"]
        .as_object()
        .expect("listeners")
        .values()
        .find(|l| l["accelerator_arn"] == arn && l["spec"]["portRanges"][0]["from"] == 443)
        .and_then(|l| l["arn"].as_str())
        .expect("the https listener")
        .to_owned();
    world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
        .find(|g| g["listener_arn"] == https.as_str() && g["spec"]["region"] == "eu-central-1")
        .and_then(|g| g["spec"]["trafficDial"].as_u64())
        .expect("the eu-central-1 group")
}

/// `text` between `after` and the next `until`.
fn between<'a>(text: &'a str, after: &str, until: &str) -> &'a str {
    let start = text.find(after).map(|i| i + after.len()).expect(after);
    let end = text[start..].find(until).map(|i| i + start).expect(until);
    &text[start..end]
}

fn set_dial(dir: &Path, sim: &Path, percent: &str) {
    let run = sim_run(
        dir,
        sim,
        &[
            "sim",
            "set-dial",
            "api",
            "eu-central-1",
            percent,
            "--listener",
            "https",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
}

/// Runs `f` on the simulated cloud, as another tool would call its API.
fn with_cloud<T>(sim: &Path, f: impl AsyncFnOnce(&meridian_sim::SimCloud) -> T) -> T {
    let cloud = meridian_sim::SimCloud::new(meridian_sim::SimStore::open(sim).expect("sim"));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f(&cloud))
}

#[test]
fn an_override_holds_a_hand_made_dial_until_it_expires_then_apply_restores_it() {
    let (dir, sim) = setup();
    let dir = dir.path();

    let set = sim_run(dir, &sim, &["override", "set", "api", "--until", "2h"]);
    assert_eq!(set.code, 0, "{}", set.all());
    let until = between(&set.stdout, "is held until ", ";").to_owned();
    assert!(
        set.stdout
            .contains("Override set: GlobalAccelerator[api] (provider `aws-global`)")
            && set.stdout.contains("Set by ")
            && set.stdout.contains(" at 20"),
        "who and when are recorded: {}",
        set.all()
    );
    assert_eq!(
        api_accelerator(&sim)["tags"][OVERRIDE_KEY],
        until.as_str(),
        "the marker is a tag on the accelerator"
    );

    set_dial(dir, &sim, "30");
    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(
        drift.code,
        0,
        "held differences are deliberate: {}",
        drift.all()
    );
    assert!(
        drift.stdout.contains(EU_GROUP)
            && drift.stdout.contains(&format!("overridden until {until}"))
            && drift.stdout.contains("trafficDial: live 30, desired 100"),
        "{}",
        drift.all()
    );
    let json = sim_run(dir, &sim, &["drift", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(report["drifted"], false);
    assert_eq!(report["overridden"][0]["address"], EU_GROUP);
    assert_eq!(report["overridden"][0]["overridden_until"], until.as_str());
    assert_eq!(
        report["overridden"][0]["override"],
        "GlobalAccelerator[api]"
    );
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing to apply: {}", plan.all());
    assert!(plan.stdout.contains("1 change(s) held"), "{}", plan.all());

    let (_, writes_before) = call_totals(&sim);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("Held back 1 change(s)") && apply.stdout.contains(EU_GROUP),
        "apply says what it held back: {}",
        apply.all()
    );
    assert_eq!(call_totals(&sim).1, writes_before, "apply wrote nothing");
    assert_eq!(eu_dial(&sim), 30, "the hand-made dial stays");

    // A short override, then let it pass.
    let short = sim_run(dir, &sim, &["override", "set", "api", "--until", "2s"]);
    assert_eq!(short.code, 0, "{}", short.all());
    assert!(
        short
            .stdout
            .contains(&format!("replacing the override until {until}")),
        "{}",
        short.all()
    );
    let expired_at = between(&short.stdout, "is held until ", ",").to_owned();
    std::thread::sleep(Duration::from_millis(3100));
    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(
        drift.code,
        2,
        "an expired override is drift again: {}",
        drift.all()
    );
    assert!(
        drift.stdout.contains(&format!(
            "override of GlobalAccelerator[api] expired at {expired_at}; reverting"
        )) && drift.stdout.contains("trafficDial: live 30, desired 100"),
        "{}",
        drift.all()
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(eu_dial(&sim), 100, "the desired dial is restored");
    assert_eq!(sim_run(dir, &sim, &["drift"]).code, 0);

    let clear = sim_run(dir, &sim, &["override", "clear", "GlobalAccelerator/api"]);
    assert_eq!(clear.code, 0, "{}", clear.all());
    assert!(
        clear
            .stdout
            .contains(&format!("was held until {expired_at}"))
            && clear.stdout.contains("Cleared by "),
        "{}",
        clear.all()
    );
    let tags = api_accelerator(&sim)["tags"].clone();
    assert!(tags.get(OVERRIDE_KEY).is_none(), "marker removed: {tags}");
    assert_eq!(tags["team"], "edge", "user tags untouched: {tags}");
    let again = sim_run(dir, &sim, &["override", "clear", "api"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stdout.contains("nothing to clear"), "{}", again.all());
}

#[test]
fn an_unreadable_marker_is_a_note_and_holds_nothing() {
    let (dir, sim) = setup();
    let dir = dir.path();
    let arn = api_accelerator(&sim)["arn"]
        .as_str()
        .expect("arn")
        .to_owned();
    with_cloud(&sim, async |cloud| {
        let tags = [(OVERRIDE_KEY.to_owned(), "next tuesday".to_owned())].into();
        cloud.tag_resource(&arn, tags, Vec::new()).await
    })
    .expect("tagged by hand");
    set_dial(dir, &sim, "30");

    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("note: GlobalAccelerator[api] carries")
            && drift.stdout.contains("next tuesday")
            && drift.stdout.contains("not an RFC 3339 time")
            && !drift.stdout.contains("overridden until"),
        "{}",
        drift.all()
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(eu_dial(&sim), 100, "not held: the dial is restored");
}

#[test]
fn a_backend_service_override_holds_a_hand_made_capacity_scaler() {
    let (dir, sim) = setup();
    let dir = dir.path();
    let set = sim_run(
        dir,
        &sim,
        &[
            "override",
            "set",
            "BackendService/app-backend",
            "--until",
            "2030-01-01T02:00:00+02:00",
        ],
    );
    assert_eq!(set.code, 0, "{}", set.all());
    assert!(
        set.stdout.contains("held until 2030-01-01T00:00:00Z"),
        "{}",
        set.all()
    );
    let service = |sim: &Path| {
        world(sim)["backend_services"]
            .as_object()
            .expect("services")
            .values()
            .find(|s| s["name"] == "app-backend")
            .cloned()
            .expect("app-backend")
    };
    let description = service(&sim)["description"]
        .as_str()
        .expect("description")
        .to_owned();
    assert!(
        description.contains("[meridian.dev/override-until=2030-01-01T00:00:00Z]")
            && description.contains("meridian.dev/managed-by=meridian"),
        "the marker sits beside the ownership marker: {description}"
    );

    let project = service(&sim)["spec"]["project"]
        .as_str()
        .expect("project")
        .to_owned();
    let group = "regions/europe-west1/networkEndpointGroups/app-eu";
    let mut backend: meridian_provider::BackendSpec = serde_json::from_value(
        service(&sim)["backends"]
            .as_array()
            .expect("backends")
            .iter()
            .find(|b| b["group"] == group)
            .cloned()
            .expect("the EU backend"),
    )
    .expect("a backend");
    backend.capacity_scaler = 0.2;
    with_cloud(&sim, async |cloud| {
        cloud
            .patch_backend(&project, "app-backend", group, Some(&backend))
            .await
    })
    .expect("scaled down by hand");

    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
    assert!(
        drift.stdout.contains(
            "overridden until 2030-01-01T00:00:00Z (override on BackendService[app-backend])"
        ) && drift
            .stdout
            .contains("capacityScaler: live 0.2, desired 1.0"),
        "{}",
        drift.all()
    );
    let (_, writes_before) = call_totals(&sim);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(call_totals(&sim).1, writes_before, "apply wrote nothing");

    let clear = sim_run(
        dir,
        &sim,
        &["override", "clear", "BackendService[app-backend]"],
    );
    assert_eq!(clear.code, 0, "{}", clear.all());
    let description = service(&sim)["description"]
        .as_str()
        .expect("description")
        .to_owned();
    assert!(
        !description.contains(OVERRIDE_KEY) && description.contains("meridian.dev/owner="),
        "{description}"
    );
    assert_eq!(sim_run(dir, &sim, &["drift"]).code, 2);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let scaler = service(&sim)["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .find(|b| b["group"] == group)
        .and_then(|b| {
            b["capacity_scaler"]
                .as_f64()
                .or(b["capacityScaler"].as_f64())
        });
    assert_eq!(scaler, Some(1.0), "the desired scaler is restored");
}

#[test]
fn override_refuses_unknown_objects_and_times_in_the_past() {
    let (dir, sim) = setup();
    let dir = dir.path();
    let cases: [(&[&str], &str); 5] = [
        (
            &["override", "set", "nope", "--until", "1h"],
            "no accelerator or backend service named `nope`",
        ),
        (
            &["override", "set", "GlobalAccelerator/gone", "--until", "1h"],
            "GlobalAccelerator[gone] is not a live object",
        ),
        (
            &["override", "set", "api", "--until", "2020-01-01T00:00:00Z"],
            "is not in the future",
        ),
        (
            &["override", "set", "api", "--until", "soon"],
            "neither an RFC 3339 time",
        ),
        (
            &["override", "clear", "HealthCheck[app-health-check]"],
            "cannot carry a break-glass override",
        ),
    ];
    let (_, writes_before) = call_totals(&sim);
    for (args, message) in cases {
        let run = sim_run(dir, &sim, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(message), "{args:?}: {}", run.all());
    }
    assert_eq!(call_totals(&sim).1, writes_before, "nothing was written");
}

#[test]
fn the_daemon_leaves_an_overridden_dial_alone_until_the_override_is_cleared() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let mut files = example_files("desired-state");
    for (path, content) in &mut files {
        if path.ends_with("policies.yaml") {
            *content = without_traffic_policy(content);
        }
    }
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let repo = Repo::new(root, &files);
    let sim = root.join("sim");
    assert_eq!(
        sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]).code,
        0
    );
    let state = root.join("state");
    let daemon = Daemon::start(
        &sim,
        &[
            "--repo",
            &repo.url(),
            "--interval",
            "300ms",
            "--drift-interval",
            "500ms",
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        None,
    );
    let head = repo.git(&["rev-parse", "HEAD"]);
    let wait = Duration::from_secs(30);
    daemon.wait_for(wait, "the initial revision to be applied", |s| {
        s["last_applied"]["revision"] == head.as_str()
    });

    let desired = repo.work.join("desired-state");
    let desired = desired.to_str().expect("utf-8");
    let set = sim_run(
        root,
        &sim,
        &["override", "set", "api", "--until", "1h", "--dir", desired],
    );
    assert_eq!(set.code, 0, "{}", set.all());
    set_dial(root, &sim, "30");
    let reconciles = daemon.status()["reconciles"].as_u64().unwrap_or(0);
    let overridden = |s: &serde_json::Value| {
        s["resources"].as_array().is_some_and(|r| {
            r.iter()
                .any(|r| r["address"] == EU_GROUP && r["state"] == "overridden")
        })
    };
    let status = daemon.wait_for(wait, "two drift checks to hold the dial", |s| {
        s["reconciles"].as_u64().unwrap_or(0) >= reconciles + 2 && overridden(s)
    });
    assert!(
        status["drift"].as_array().is_some_and(|d| d.is_empty()),
        "{status:#}"
    );
    assert_eq!(eu_dial(&sim), 30, "the daemon left the dial alone");

    let clear = sim_run(root, &sim, &["override", "clear", "api", "--dir", desired]);
    assert_eq!(clear.code, 0, "{}", clear.all());
    daemon.wait_for(wait, "the dial to be corrected", |s| !overridden(s));
    let started = std::time::Instant::now();
    while eu_dial(&sim) != 100 && started.elapsed() < wait {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        eu_dial(&sim),
        100,
        "after the clear the daemon restores the dial"
    );
}
