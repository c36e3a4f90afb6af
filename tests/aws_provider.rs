//! The real `aws` provider (official AWS SDK for Rust) against meridian's
//! Global Accelerator sandbox: no `--sim` on the meridian side, the SDK talks
//! HTTP to the sandbox, and the sandbox's counters judge the calls.

mod common;

use std::path::Path;

use common::aws::{Server as Sandbox, aws, ga_call};
use common::{call_totals, sim_run, world};

/// A desired-state folder with the example's accelerators on an `aws`
/// provider pointed at the sandbox.
fn desired(dir: &Path, sandbox: &Sandbox) {
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(
        folder.join("providers.yaml"),
        format!("apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: aws-global}}\nspec:\n  type: aws\n  endpoints: {{globalaccelerator: \"http://{}\"}}\n", sandbox.address),
    )
    .expect("write");
    std::fs::copy(
        common::example_dir().join("global-accelerator.yaml"),
        folder.join("global-accelerator.yaml"),
    )
    .expect("copy");
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Sandbox) {
    let dir = tempfile::tempdir().expect("tempdir");
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
    let sandbox = common::aws::sandbox(&sim);
    desired(dir.path(), &sandbox);
    (dir, sim, sandbox)
}

fn reads(sim: &Path, operation: &str) -> u64 {
    let world = world(sim);
    let c = &world["calls"][operation];
    c["ok"].as_u64().unwrap_or(0)
        + c["failed"].as_u64().unwrap_or(0)
        + c["throttled"].as_u64().unwrap_or(0)
}

#[test]
fn apply_through_the_sdk_creates_the_accelerators_and_drift_is_restored() {
    let (dir, sim, sandbox) = setup();
    let dir = dir.path();
    let apply = aws(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("Applied 22 of 22 change(s)"),
        "{}",
        apply.all()
    );
    let plan = aws(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());

    let world_now = world(&sim);
    let names: Vec<&str> = world_now["accelerators"]
        .as_object()
        .expect("a")
        .values()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Change a dial through the sandbox's API, as another tool would.
    let group = world_now["endpoint_groups"]
        .as_object()
        .expect("g")
        .values()
        .find(|g| g["spec"]["region"] == "ap-southeast-1" && g["spec"]["trafficDial"] == 50)
        .expect("APAC https group");
    let (status, _) = ga_call(
        &sandbox,
        "UpdateEndpointGroup",
        serde_json::json!({"EndpointGroupArn": group["arn"], "TrafficDialPercentage": 5.0}),
    );
    assert_eq!(status, 200);
    let drift = aws(dir, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("GlobalAccelerator[api].listener[https].endpointGroup[ap-southeast-1]"),
        "{}",
        drift.all()
    );
    assert!(
        drift.stdout.contains("trafficDial: live 5, desired 50"),
        "{}",
        drift.all()
    );
    let (_, writes) = call_totals(&sim);
    let restore = aws(dir, &["apply", "--yes"]);
    assert_eq!(restore.code, 0, "{}", restore.all());
    assert_eq!(
        call_totals(&sim).1 - writes,
        1,
        "one UpdateEndpointGroup restores the dial"
    );
    assert_eq!(aws(dir, &["drift"]).code, 0);
}

#[test]
fn an_accelerator_without_meridian_tags_is_never_modified_or_deleted() {
    let (dir, sim, sandbox) = setup();
    let dir = dir.path();
    let (status, created) = ga_call(
        &sandbox,
        "CreateAccelerator",
        serde_json::json!({"Name": "api", "IdempotencyToken": "foreign", "Tags": [{"Key": "meridian.dev/name", "Value": "api"}]}),
    );
    assert_eq!(status, 200, "{created}");
    let foreign = created["Accelerator"]["AcceleratorArn"]
        .as_str()
        .expect("arn")
        .to_owned();
    assert_eq!(aws(dir, &["apply", "--yes"]).code, 0);
    // Remove every accelerator from desired state: meridian deletes its own only.
    std::fs::remove_file(dir.join("desired-state/global-accelerator.yaml")).expect("remove");
    std::fs::write(dir.join("desired-state/policy.yaml"), "apiVersion: meridian.dev/v1alpha1\nkind: DataResidencyPolicy\nmetadata: {name: eu}\nspec: {dataClassification: [pii], allowedRegions: [eu-west-1]}\n").expect("write");
    let apply = aws(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let world = world(&sim);
    let accelerators = world["accelerators"].as_object().expect("a");
    assert_eq!(accelerators.len(), 1);
    assert_eq!(accelerators[&foreign]["enabled"], true, "not even disabled");
    assert_eq!(
        accelerators[&foreign]["tags"],
        serde_json::json!({"meridian.dev/name": "api"}),
        "its tags are untouched"
    );
}

#[test]
fn more_than_a_hundred_accelerators_page_correctly_with_the_minimum_of_reads() {
    let (dir, sim, sandbox) = setup();
    let dir = dir.path();
    meridian_sim::SimStore::open(&sim)
        .expect("store")
        .transact(|w| {
            w.settings.quotas.accelerators = 500;
            // The raw calls below do not retry: no rate limit for them.
            w.settings.limits.off = true;
        })
        .expect("quota");
    for n in 0..118 {
        let (status, body) = ga_call(
            &sandbox,
            "CreateAccelerator",
            serde_json::json!({"Name": format!("other-{n}"), "IdempotencyToken": format!("other-{n}")}),
        );
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(aws(dir, &["apply", "--yes"]).code, 0);
    let before: Vec<u64> = [
        "ListAccelerators",
        "ListTagsForResource",
        "ListListeners",
        "ListEndpointGroups",
        "DescribeAccelerator",
        "DescribeListener",
        "DescribeEndpointGroup",
    ]
    .iter()
    .map(|op| reads(&sim, op))
    .collect();
    let plan = aws(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let after: Vec<u64> = [
        "ListAccelerators",
        "ListTagsForResource",
        "ListListeners",
        "ListEndpointGroups",
        "DescribeAccelerator",
        "DescribeListener",
        "DescribeEndpointGroup",
    ]
    .iter()
    .map(|op| reads(&sim, op))
    .collect();
    let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    // 120 accelerators: 2 pages of ListAccelerators, one ListTagsForResource
    // each (ownership lives in tags, which ListAccelerators does not return),
    // one ListListeners per owned accelerator (2), one ListEndpointGroups per
    // listener (3), and no Describe* at all.
    assert_eq!(delta, vec![2, 120, 2, 3, 0, 0, 0], "reads by operation");
}

#[test]
fn throttling_converges_and_a_quota_fails_fast_without_a_retry_loop() {
    let (dir, sim, _sandbox) = setup();
    let dir = dir.path();
    assert_eq!(
        sim_run(dir, &sim, &["sim", "faults", "--throttle-rate", "0.3"]).code,
        0
    );
    let apply = aws(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let throttled: u64 = world(&sim)["calls"]
        .as_object()
        .expect("calls")
        .values()
        .map(|c| c["throttled"].as_u64().unwrap_or(0))
        .sum();
    assert!(throttled > 0, "the sandbox did throttle");
    assert_eq!(
        sim_run(
            dir,
            &sim,
            &["sim", "faults", "--clear", "--deploy-delay-ms", "50"]
        )
        .code,
        0
    );
    assert_eq!(aws(dir, &["plan", "--detailed-exitcode"]).code, 0);

    // A fresh account with a quota of one accelerator.
    let (dir, sim, _sandbox) = setup();
    let dir = dir.path();
    meridian_sim::SimStore::open(&sim)
        .expect("store")
        .transact(|w| w.settings.quotas.accelerators = 1)
        .expect("quota");
    let apply = aws(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 1, "{}", apply.all());
    assert!(
        apply.stderr.contains("LimitExceededException"),
        "{}",
        apply.all()
    );
    assert!(apply.stderr.contains("quota"), "{}", apply.all());
    let creates = &world(&sim)["calls"]["CreateAccelerator"];
    assert_eq!(creates["ok"], 1);
    assert_eq!(
        creates["failed"], 1,
        "the quota error is not retried: {creates}"
    );
}

#[test]
fn missing_credentials_are_a_clear_error_not_a_retry_loop() {
    let (dir, sim, _sandbox) = setup();
    let dir = dir.path();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["plan", "--detailed-exitcode"])
        .current_dir(dir)
        .env_remove("MERIDIAN_SIM")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("HOME", dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("meridian runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("NoCredentials") && stdout.contains("AWS_PROFILE"),
        "{stdout}"
    );
    assert_eq!(
        world(&sim)["calls"]["ListAccelerators"],
        serde_json::Value::Null,
        "nothing reached the API, and nothing was retried"
    );
}
