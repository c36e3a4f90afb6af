//! One test per bug found in review, named after what broke.

mod common;

use std::path::Path;

use common::{call_totals, copy_example, meridian, normalized, sim_run, world};

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_example(dir.path());
    let sim = dir.path().join("sim");
    assert_eq!(
        sim_run(
            dir.path(),
            &sim,
            &["sim", "faults", "--deploy-delay-ms", "50"]
        )
        .code,
        0
    );
    (dir, sim)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "`{from}` not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).expect("write");
}

#[test]
fn a_saved_plan_edited_by_hand_is_refused() {
    let (dir, sim) = setup();
    let dir = dir.path();
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    edit(
        &dir.join("desired-state/global-accelerator.yaml"),
        "trafficDial: 50            # APAC",
        "trafficDial: 60            # APAC",
    );
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
    // Turn the dial change into a dial of 0: same digest, same fingerprint.
    let text = std::fs::read_to_string(&plan_file).expect("read");
    let mut plan: serde_json::Value = serde_json::from_str(&text).expect("json");
    plan["plan"]["changes"][0]["after"]["trafficDial"] = serde_json::json!(0);
    std::fs::write(&plan_file, serde_json::to_string(&plan).expect("json")).expect("write");
    let before = normalized(&sim);
    let (_, writes) = call_totals(&sim);
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
        apply.stderr.contains("was changed after it was saved"),
        "{}",
        apply.all()
    );
    assert_eq!(normalized(&sim), before);
    assert_eq!(call_totals(&sim).1, writes);
}

#[test]
fn a_plan_saved_for_a_folder_applies_when_the_folder_is_spelled_differently() {
    let (dir, sim) = setup();
    let dir = dir.path();
    let plan_file = dir.join("plan.json");
    assert_eq!(
        sim_run(
            dir,
            &sim,
            &[
                "plan",
                "desired-state",
                "--out",
                plan_file.to_str().expect("utf-8")
            ]
        )
        .code,
        0
    );
    let apply = sim_run(
        dir,
        &sim,
        &[
            "apply",
            "./desired-state/",
            "--plan",
            plan_file.to_str().expect("utf-8"),
            "--yes",
        ],
    );
    assert_eq!(apply.code, 0, "{}", apply.all());
}

#[test]
fn moving_an_accelerators_only_region_never_drains_it_before_the_replacement_serves() {
    let (dir, sim) = setup();
    let dir = dir.path();
    let ga = dir.join("desired-state/global-accelerator.yaml");
    let text = std::fs::read_to_string(&ga).expect("read");
    let start = text.find("        - region: eu-central-1\n          trafficDial: 100\n          healthCheck: {protocol: HTTPS, path: /health, intervalSeconds: 10}").expect("accounts-eu eu-central-1 group");
    let end = text[start..]
        .find("        - region: eu-west-1")
        .expect("eu-west-1 group")
        + start;
    std::fs::write(&ga, format!("{}{}", &text[..start], &text[end..])).expect("write");
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    // Move the only region: eu-west-1 -> eu-central-1.
    edit(
        &ga,
        "        - region: eu-west-1\n",
        "        - region: eu-central-1\n",
    );
    edit(
        &ga,
        "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/app/accounts-eu-west/4e5f6a7b",
        "arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/accounts-eu-central/5f6a7b8c",
    );
    assert_eq!(
        sim_run(
            dir,
            &sim,
            &["sim", "faults", "--fail-operation", "CreateEndpointGroup"]
        )
        .code,
        0
    );
    let failed = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    let world = world(&sim);
    let accounts = world["accelerators"]
        .as_object()
        .expect("a")
        .values()
        .find(|a| a["name"] == "accounts-eu")
        .expect("accounts-eu");
    let arn = accounts["arn"].as_str().expect("arn");
    let west = world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
        .find(|g| {
            g["spec"]["region"] == "eu-west-1"
                && g["arn"].as_str().is_some_and(|a| a.starts_with(arn))
        })
        .expect("the old group is still there");
    assert_eq!(
        west["spec"]["trafficDial"], 100,
        "the old region still serves while the new one has no endpoints"
    );
    assert_eq!(
        sim_run(
            dir,
            &sim,
            &["sim", "faults", "--clear", "--deploy-delay-ms", "50"]
        )
        .code,
        0
    );
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn renaming_a_listener_keeps_the_cloud_listener_instead_of_clashing_on_its_ports() {
    let (dir, sim) = setup();
    let dir = dir.path();
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    let listeners_before: Vec<String> = world(&sim)["listeners"]
        .as_object()
        .expect("listeners")
        .keys()
        .cloned()
        .collect();
    edit(
        &dir.join("desired-state/global-accelerator.yaml"),
        "    - name: grpc\n",
        "    - name: grpc-public\n",
    );
    let plan = sim_run(dir, &sim, &["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json");
    assert_eq!(
        plan["summary"],
        serde_json::json!({"create": 0, "update": 1, "delete": 0}),
        "{plan:#}"
    );
    // A listener's name lives in its accelerator's tags: the rename is a
    // tag update of the accelerator, the listener stays as it is.
    assert_eq!(plan["changes"][0]["address"], "GlobalAccelerator[api]");
    assert_eq!(
        plan["changes"][0]["after"]["listenerNames"]["grpc-public"], "TCP:8443-8443",
        "{plan:#}"
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let listeners_after: Vec<String> = world(&sim)["listeners"]
        .as_object()
        .expect("listeners")
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        listeners_after, listeners_before,
        "the same cloud listeners, no new one"
    );
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
}

#[test]
fn two_repositories_with_their_own_owners_never_delete_each_other() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let sim = root.join("sim");
    assert_eq!(
        sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]).code,
        0
    );
    let ga = std::fs::read_to_string(common::example_dir().join("global-accelerator.yaml"))
        .expect("read");
    let split = ga.find("---\n# Accounts service").expect("two documents");
    for (team, doc) in [("team-a", &ga[..split]), ("team-b", &ga[split + 4..])] {
        let folder = root.join(team);
        std::fs::create_dir_all(&folder).expect("mkdir");
        std::fs::write(folder.join("providers.yaml"), format!("apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: aws-global}}\nspec: {{type: aws, owner: {team}}}\n")).expect("write");
        std::fs::write(folder.join("ga.yaml"), doc).expect("write");
    }
    assert_eq!(sim_run(root, &sim, &["apply", "team-a", "--yes"]).code, 0);
    let b = sim_run(root, &sim, &["apply", "team-b", "--yes"]);
    assert_eq!(b.code, 0, "{}", b.all());
    assert!(
        !b.stdout.contains("- GlobalAccelerator[api]"),
        "team B does not plan to delete team A's accelerator: {}",
        b.stdout
    );
    let names: Vec<String> = world(&sim)["accelerators"]
        .as_object()
        .expect("a")
        .values()
        .map(|a| a["name"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        sim_run(root, &sim, &["plan", "team-a", "--detailed-exitcode"]).code,
        0
    );
    assert_eq!(
        sim_run(root, &sim, &["plan", "team-b", "--detailed-exitcode"]).code,
        0
    );
}

#[test]
fn a_symlinked_yaml_file_is_read_not_planned_for_deletion() {
    let (dir, sim) = setup();
    let dir = dir.path();
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    // Links must stay inside the folder (tests/hardening.rs refuses one
    // that leaves it): the shared file lives in a hidden folder inside.
    let shared = dir.join("desired-state/.shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::rename(
        dir.join("desired-state/global-accelerator.yaml"),
        shared.join("global-accelerator.yaml"),
    )
    .expect("move");
    std::os::unix::fs::symlink(
        shared.join("global-accelerator.yaml"),
        dir.join("desired-state/global-accelerator.YAML"),
    )
    .expect("symlink");
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    std::fs::remove_file(shared.join("global-accelerator.yaml")).expect("break the link");
    let broken = sim_run(dir, &sim, &["plan"]);
    assert_eq!(
        broken.code,
        1,
        "a broken link is an error, never a deletion: {}",
        broken.all()
    );
}

#[test]
fn an_alias_bomb_is_refused_without_exhausting_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from(
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec: {type: aws}\nx0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..9 {
        text.push_str(&format!(
            "x{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    std::fs::write(dir.path().join("bomb.yaml"), text).expect("write");
    let run = meridian(dir.path(), &["validate", "."]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("aliases expand to more than"),
        "{}",
        run.all()
    );
}

#[test]
fn usage_errors_exit_1_never_the_drift_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        &["drift", "--format", "yaml"][..],
        &["plan", "--detailed-exitcod"][..],
        &["diff", "--repo", "."][..],
        &["apply", "--yes", "--override-deny-window", " "][..],
        &[][..],
    ] {
        let run = meridian(dir.path(), args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
    }
    assert_eq!(meridian(dir.path(), &["--help"]).code, 0);
}

#[test]
fn two_live_objects_claiming_one_address_block_the_plan() {
    let (dir, sim) = setup();
    let dir = dir.path();
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    // A hand-made copy carrying meridian's tags.
    let world_now = world(&sim);
    let api = world_now["accelerators"]
        .as_object()
        .expect("a")
        .values()
        .find(|a| a["name"] == "api")
        .expect("api");
    let tags: std::collections::BTreeMap<String, String> =
        serde_json::from_value(api["tags"].clone()).expect("tags");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cloud = meridian_sim::SimCloud::new(meridian_sim::SimStore::open(&sim).expect("store"));
    runtime
        .block_on(cloud.create_accelerator("api", "IPV4", true, tags, None))
        .expect("copy");
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stdout
            .contains("CONFLICT: aws-global: GlobalAccelerator[api] exists 2 times"),
        "{}",
        plan.all()
    );
    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 1, "{}", drift.all());
    assert!(drift.stdout.contains("CONFLICT:"), "{}", drift.all());
    let (_, writes) = call_totals(&sim);
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 1);
    assert_eq!(
        call_totals(&sim).1,
        writes,
        "nothing is applied while the conflict lasts"
    );
}

#[test]
fn sim_commands_reject_unknown_regions_and_operations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let health = sim_run(
        dir.path(),
        &sim,
        &["sim", "set-health", "mars-1", "unhealthy"],
    );
    assert_eq!(health.code, 1, "{}", health.all());
    assert!(
        health.stderr.contains("unknown region `mars-1`"),
        "{}",
        health.all()
    );
    let fault = sim_run(
        dir.path(),
        &sim,
        &["sim", "faults", "--fail-operation", "CreateAcelerator"],
    );
    assert_eq!(fault.code, 1, "{}", fault.all());
    assert!(
        fault
            .stderr
            .contains("unknown operation `CreateAcelerator`"),
        "{}",
        fault.all()
    );
}

#[test]
fn swapping_an_endpoint_in_a_full_group_makes_room_first() {
    let (dir, sim) = setup();
    let dir = dir.path();
    let ga = dir.join("desired-state/global-accelerator.yaml");
    let endpoints = |ids: std::ops::Range<u32>| -> String {
        ids.map(|n| format!("            - {{id: arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/accounts-{n:02}/x, weight: {}}}\n", 10 + n)).collect()
    };
    let original = "            - id: arn:aws:elasticloadbalancing:eu-central-1:111122223333:loadbalancer/app/accounts-eu/0a1b2c3d\n              weight: 128\n              clientIpPreservation: true\n";
    edit(&ga, original, &endpoints(0..10));
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    // Replace endpoint 00 (the lowest weight) by endpoint 10: eleven would not fit.
    edit(&ga, &endpoints(0..10), &endpoints(1..11));
    let plan = sim_run(dir, &sim, &["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json");
    let order: Vec<(String, u64)> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or("").to_owned(),
                c["wave"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![("delete".to_owned(), 3), ("create".to_owned(), 5)],
        "{plan:#}"
    );
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(sim_run(dir, &sim, &["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn sim_on_a_command_that_never_talks_to_a_cloud_is_an_error_not_ignored() {
    let (dir, sim) = setup();
    let dir = dir.path();
    for command in [&["validate"][..], &["schema"], &["status"]] {
        let run = sim_run(dir, &sim, command);
        assert_eq!(run.code, 1, "{command:?}: {}", run.all());
        assert!(
            run.stderr.contains("--sim has no effect"),
            "{command:?}: {}",
            run.all()
        );
    }
    // MERIDIAN_SIM in the environment is for the commands that use it.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .current_dir(dir)
        .env("MERIDIAN_SIM", &sim)
        .arg("validate")
        .output()
        .expect("runs");
    assert_eq!(run.status.code(), Some(0));
}

#[test]
fn a_backend_group_written_with_its_project_prefix_matches_what_is_observed() {
    let (dir, sim) = setup();
    let dir = dir.path();
    assert_eq!(sim_run(dir, &sim, &["apply", "--yes"]).code, 0);
    let file = dir.join("desired-state/gcp-load-balancing.yaml");
    edit(
        &file,
        "- group: regions/us-east1/networkEndpointGroups/app-us",
        "- group: projects/acme-prod-314159/regions/us-east1/networkEndpointGroups/app-us",
    );
    edit(
        &file,
        "- group: regions/europe-west1/networkEndpointGroups/app-eu",
        "- group: https://www.googleapis.com/compute/v1/projects/acme-prod-314159/regions/europe-west1/networkEndpointGroups/app-eu",
    );
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.code,
        0,
        "the same groups, nothing to do: {}",
        plan.all()
    );
    // A group of another project is refused where it is written.
    edit(
        &file,
        "projects/acme-prod-314159/regions/us-east1",
        "projects/someone-else-1/regions/us-east1",
    );
    let validate = meridian(dir, &["validate"]);
    assert_eq!(validate.code, 1, "{}", validate.all());
    assert!(
        validate.stderr.contains("gcp-load-balancing.yaml:")
            && validate.stderr.contains("spec.backends[0].group")
            && validate.stderr.contains("is in project `someone-else-1`"),
        "{}",
        validate.all()
    );
}
