//! Management modes (`metadata.annotations["meridian.dev/management"]`):
//! `observe` objects are never written and their drift is reported;
//! `traffic` objects get their levers written while every other field
//! stays as its owner left it. The simulator's call counters and state
//! judge, and another client of the sandbox plays the other owner.

mod common;

use std::path::Path;

use common::aws::ga_call;
use common::{call_totals, copy_example, sim_run, world};

const ACCOUNTS: &str = "  name: accounts-eu\n";

/// The example applied, with `accounts-eu` then put under `mode`.
fn converged_with(mode: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = copy_example(dir.path());
    let sim = dir.path().join("sim");
    let run = sim_run(
        dir.path(),
        &sim,
        &["sim", "faults", "--deploy-delay-ms", "20"],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let apply = sim_run(dir.path(), &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    edit(
        &folder,
        ACCOUNTS,
        &format!("{ACCOUNTS}  annotations: {{meridian.dev/management: {mode}}}\n"),
    );
    (dir, sim)
}

fn edit(folder: &Path, from: &str, to: &str) {
    let file = folder.join("global-accelerator.yaml");
    let text = std::fs::read_to_string(&file).expect("read");
    assert_eq!(text.matches(from).count(), 1, "`{from}` once in {text}");
    std::fs::write(&file, text.replace(from, to)).expect("write");
}

/// accounts-eu's group in `region` (its one listener), from the world.
fn group(sim: &Path, region: &str) -> (String, serde_json::Value) {
    let world = world(sim);
    let accelerator = world["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .find(|a| a["name"] == "accounts-eu")
        .and_then(|a| a["arn"].as_str())
        .expect("accounts-eu")
        .to_owned();
    world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .iter()
        .find(|(arn, g)| arn.starts_with(&accelerator) && g["spec"]["region"] == region)
        .map(|(arn, g)| (arn.clone(), g["spec"].clone()))
        .expect("the group")
}

#[test]
fn observe_objects_are_never_written_and_their_drift_is_reported() {
    let (dir, sim) = converged_with("observe");
    let dir = dir.path();
    let folder = dir.join("desired-state");
    // Drift made out of band, and a change declared in Git.
    let set = sim_run(
        dir,
        &sim,
        &["sim", "set-dial", "accounts-eu", "eu-west-1", "30"],
    );
    assert_eq!(set.code, 0, "{}", set.all());
    edit(
        &folder,
        "- region: eu-central-1\n          trafficDial: 100\n          healthCheck: {protocol: HTTPS, path: /health, intervalSeconds: 10}\n          endpoints:\n            - id: arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/accounts-eu/",
        "- region: eu-central-1\n          trafficDial: 60\n          healthCheck: {protocol: HTTPS, path: /health, intervalSeconds: 10}\n          endpoints:\n            - id: arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/accounts-eu/",
    );

    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("trafficDial: live 30, desired 100")
            && drift.stdout.contains("trafficDial: live 100, desired 60"),
        "{}",
        drift.all()
    );

    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing to apply: {}", plan.all());
    assert!(
        plan.stdout
            .contains("2 difference(s) are reported, not written"),
        "{}",
        plan.all()
    );
    let json = sim_run(dir, &sim, &["plan", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let unwritten = json["unwritten"].as_array().expect("unwritten");
    assert_eq!(unwritten.len(), 2, "{json}");
    assert!(unwritten.iter().all(|u| u["management"] == "observe"));
    assert_eq!(json["changes"].as_array().map(Vec::len), Some(0));

    let (_, writes) = call_totals(&sim);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(
        call_totals(&sim).1,
        writes,
        "an observed object is never written"
    );
    assert_eq!(group(&sim, "eu-west-1").1["trafficDial"], 30);
    assert_eq!(group(&sim, "eu-central-1").1["trafficDial"], 100);

    // Back to full management: the same differences are written.
    edit(
        &folder,
        "  annotations: {meridian.dev/management: observe}\n",
        "",
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(group(&sim, "eu-west-1").1["trafficDial"], 100);
    assert_eq!(group(&sim, "eu-central-1").1["trafficDial"], 60);
}

#[test]
fn traffic_objects_get_their_dials_and_leave_other_fields_to_their_owner() {
    let (dir, sim) = converged_with("traffic");
    let dir = dir.path();
    let folder = dir.join("desired-state");
    // The accelerator's other owner changes a health check through the API.
    let sandbox = common::aws::sandbox(&sim);
    let (arn, _) = group(&sim, "eu-west-1");
    let (status, body) = ga_call(
        &sandbox,
        "UpdateEndpointGroup",
        serde_json::json!({"EndpointGroupArn": arn, "HealthCheckPath": "/owned-elsewhere"}),
    );
    assert_eq!(status, 200, "{body}");
    drop(sandbox);
    // Git moves the same group's dial.
    edit(
        &folder,
        "- region: eu-west-1\n          trafficDial: 100",
        "- region: eu-west-1\n          trafficDial: 40",
    );

    let plan = sim_run(dir, &sim, &["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json");
    let changes = plan["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{plan}");
    let fields: Vec<&str> = changes[0]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert_eq!(fields, ["trafficDial"], "{plan}");
    assert_eq!(plan["unwritten"][0]["management"], "traffic");
    assert_eq!(
        plan["unwritten"][0]["change"]["fields"][0]["path"],
        "healthCheck.path"
    );

    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("1 UpdateEndpointGroup"),
        "{}",
        apply.all()
    );
    let (_, spec) = group(&sim, "eu-west-1");
    assert_eq!(spec["trafficDial"], 40, "the lever is meridian's");
    assert_eq!(
        spec["healthCheck"]["path"], "/owned-elsewhere",
        "the rest is its owner's: {spec}"
    );
    // Nothing left to write; the health check stays reported.
    let again = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.all());
    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(drift.stdout.contains("healthCheck.path"), "{}", drift.all());
}

#[test]
fn management_annotations_are_validated_with_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = copy_example(dir.path());
    let cases = [
        (
            "  annotations: {meridian.dev/management: readonly}\n",
            "`readonly` is not a management mode",
        ),
        (
            "  annotations: {meridian.dev/managment: observe}\n",
            "unknown annotation `meridian.dev/managment`",
        ),
    ];
    for (annotation, message) in cases {
        let file = folder.join("global-accelerator.yaml");
        let original = std::fs::read_to_string(&file).expect("read");
        edit(&folder, ACCOUNTS, &format!("{ACCOUNTS}{annotation}"));
        let run = common::meridian(dir.path(), &["validate"]);
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stderr.contains("global-accelerator.yaml:")
                && run.stderr.contains("metadata.annotations")
                && run.stderr.contains(message),
            "{}",
            run.all()
        );
        std::fs::write(&file, original).expect("restore");
    }
    // `traffic` needs levers: a health check has none.
    let file = folder.join("gcp-load-balancing.yaml");
    let text = std::fs::read_to_string(&file).expect("gcp.yaml");
    let named = "  name: app-health-check\n";
    assert_eq!(text.matches(named).count(), 1, "{text}");
    std::fs::write(
        &file,
        text.replace(
            named,
            &format!("{named}  annotations: {{meridian.dev/management: traffic}}\n"),
        ),
    )
    .expect("write");
    let run = common::meridian(dir.path(), &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("`traffic` applies to GlobalAccelerator and BackendService documents"),
        "{}",
        run.all()
    );
}
