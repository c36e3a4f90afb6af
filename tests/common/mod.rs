//! Helpers shared by the integration tests: run the real binary, make
//! desired-state folders, read the simulated world.

#![allow(dead_code)]

pub mod aws;
pub mod daemon;
pub mod gcp;
pub mod git;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, for messages.
    pub fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `meridian` with `args` in `cwd`.
pub fn meridian(cwd: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(cwd)
        .env_remove("MERIDIAN_SIM")
        .env("NO_COLOR", "1")
        .output()
        .expect("the meridian binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `meridian --sim SIM args...`.
pub fn sim_run(cwd: &Path, sim: &Path, args: &[&str]) -> Run {
    let sim = sim.to_str().expect("utf-8 path");
    let mut all = vec!["--sim", sim];
    all.extend_from_slice(args);
    meridian(cwd, &all)
}

/// The repository's example desired state.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state")
}

/// The example's `careful` traffic policy made instant: one step, no bake,
/// no deny window. Tests about something other than progressive rollouts
/// use this, so that they neither wait five minutes per step nor depend on
/// the day of the week (the example denies changes over weekends).
pub fn instant_policy(text: &str) -> String {
    text.replace("maxStepPercent: 25", "maxStepPercent: 100")
        .replace("bakeSeconds: 300", "bakeSeconds: 0")
        .replace(
            "{cron: \"0 16 * * FRI\", durationMinutes: 3840, timeZone: UTC}",
            NEVER_OPEN_WINDOW,
        )
}

/// The example without its client-origin residency scope: the `api`
/// accelerator's classification back to `public`, so that tests about other
/// things may drain us-east-1 (whose US clients the example's
/// `us-customer-data` policy keeps in North America).
pub fn without_client_residency(text: &str) -> String {
    text.replace(
        "meridian.dev/data-classification: us-customer-data",
        "meridian.dev/data-classification: public",
    )
}

/// A deny window that opens for one minute on 29 February only.
pub const NEVER_OPEN_WINDOW: &str = "{cron: \"0 0 29 2 *\", durationMinutes: 1, timeZone: UTC}";

/// Copies the example desired state into `dest/desired-state`, its traffic
/// policy made instant ([`instant_policy`]) and without its client-origin
/// residency scope ([`without_client_residency`]).
pub fn copy_example(dest: &Path) -> PathBuf {
    let target = copy_example_verbatim(dest);
    let policies = target.join("policies.yaml");
    let text = std::fs::read_to_string(&policies).expect("policies");
    std::fs::write(&policies, instant_policy(&text)).expect("write");
    let ga = target.join("global-accelerator.yaml");
    let text = std::fs::read_to_string(&ga).expect("accelerators");
    std::fs::write(&ga, without_client_residency(&text)).expect("write");
    target
}

/// Copies the example desired state into `dest/desired-state` as it is.
pub fn copy_example_verbatim(dest: &Path) -> PathBuf {
    let target = dest.join("desired-state");
    std::fs::create_dir_all(&target).expect("mkdir");
    for entry in std::fs::read_dir(example_dir()).expect("example dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), target.join(entry.file_name())).expect("copy");
    }
    target
}

/// The simulated world as JSON (`sim show --format json`).
pub fn world(sim: &Path) -> serde_json::Value {
    let run = sim_run(Path::new("."), sim, &["sim", "show", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    serde_json::from_str(&run.stdout).expect("world json")
}

/// Read and write call totals of the simulated world.
pub fn call_totals(sim: &Path) -> (u64, u64) {
    let world = world(sim);
    (
        world["call_totals"]["read"].as_u64().expect("reads"),
        world["call_totals"]["write"].as_u64().expect("writes"),
    )
}

/// The world's managed configuration with generated ids replaced by what
/// they stand for, so that two worlds built independently compare equal.
pub fn normalized(sim: &Path) -> serde_json::Value {
    let world = world(sim);
    let mut names = std::collections::BTreeMap::new();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    for (arn, accelerator) in world["accelerators"].as_object().expect("accelerators") {
        names.insert(
            arn.clone(),
            format!("accelerator:{}", text(&accelerator["name"])),
        );
    }
    let mut listeners = Vec::new();
    for listener in world["listeners"].as_object().expect("listeners").values() {
        let accelerator = names[&text(&listener["accelerator_arn"])].clone();
        let id = format!("{accelerator}/listener:{}", listener["spec"]);
        names.insert(text(&listener["arn"]), id.clone());
        listeners.push(id);
    }
    let mut groups = Vec::new();
    for group in world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
    {
        let mut endpoints: Vec<String> = group["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .map(|e| e["spec"].to_string())
            .collect();
        endpoints.sort();
        groups.push(serde_json::json!({"listener": names[&text(&group["listener_arn"])], "spec": group["spec"], "endpoints": endpoints}));
    }
    groups.sort_by_key(|g| g.to_string());
    listeners.sort();
    let mut accelerators: Vec<serde_json::Value> = world["accelerators"]
        .as_object()
        .expect("a")
        .values()
        .map(|a| {
            let tags: serde_json::Map<String, serde_json::Value> = a["tags"]
                .as_object()
                .expect("tags")
                .iter()
                .filter(|(k, _)| !k.starts_with("meridian.dev/listener:"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            serde_json::json!({"name": a["name"], "enabled": a["enabled"], "tags": tags})
        })
        .collect();
    accelerators.sort_by_key(|a| a.to_string());
    let gcp = |key: &str| -> Vec<serde_json::Value> {
        let mut items: Vec<serde_json::Value> = world[key]
            .as_object()
            .expect(key)
            .values()
            .map(|v| {
                // GCP keeps backends in insertion order; which one landed first does not matter.
                let mut backends: Vec<String> = v["backends"]
                    .as_array()
                    .map(|b| b.iter().map(|x| x.to_string()).collect())
                    .unwrap_or_default();
                backends.sort();
                serde_json::json!({"name": v["name"], "spec": v["spec"], "backends": backends})
            })
            .collect();
        items.sort_by_key(|v| v.to_string());
        items
    };
    let mut gateways = std::collections::BTreeMap::new();
    let mut tgws: Vec<String> = Vec::new();
    for tgw in world["transit_gateways"].as_object().expect("tgw").values() {
        gateways.insert(text(&tgw["id"]), text(&tgw["region"]));
        gateways.insert(text(&tgw["route_table_id"]), text(&tgw["region"]));
        tgws.push(format!(
            "{} asn={}",
            text(&tgw["region"]),
            tgw["amazon_side_asn"]
        ));
    }
    let mut peerings: Vec<String> = Vec::new();
    for peering in world["peerings"].as_object().expect("peerings").values() {
        names.insert(
            text(&peering["id"]),
            format!(
                "{}->{}",
                text(&peering["requester_region"]),
                text(&peering["accepter_region"])
            ),
        );
        peerings.push(format!(
            "{}->{} {}",
            text(&peering["requester_region"]),
            text(&peering["accepter_region"]),
            text(&peering["state"])
        ));
    }
    let mut routes: Vec<String> = world["routes"]
        .as_object()
        .expect("routes")
        .values()
        .map(|r| {
            format!(
                "{} {} via {}",
                gateways[&text(&r["route_table_id"])],
                text(&r["cidr"]),
                names[&text(&r["attachment_id"])]
            )
        })
        .collect();
    tgws.sort();
    peerings.sort();
    routes.sort();
    serde_json::json!({
        "accelerators": accelerators,
        "listeners": listeners,
        "endpoint_groups": groups,
        "health_checks": gcp("health_checks"),
        "backend_services": gcp("backend_services"),
        "url_maps": gcp("url_maps"),
        "transit_gateways": tgws,
        "peerings": peerings,
        "routes": routes,
    })
}

/// The live traffic dial of the endpoint group in `region` of the listener
/// on `port` of the accelerator named `accelerator`, read from the world.
/// Moves the `https` listener's dial of `accelerator` in `region` out of
/// band (`meridian sim set-dial`), as another writer would.
pub fn set_https_dial(sim: &Path, accelerator: &str, region: &str, percent: u8) {
    let percent = percent.to_string();
    let run = sim_run(
        Path::new("."),
        sim,
        &[
            "sim",
            "set-dial",
            accelerator,
            region,
            &percent,
            "--listener",
            "https",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
}

pub fn dial(sim: &Path, accelerator: &str, port: u64, region: &str) -> u64 {
    let world = world(sim);
    let arn = world["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .find(|a| a["name"] == accelerator)
        .and_then(|a| a["arn"].as_str())
        .expect("accelerator")
        .to_owned();
    let listeners = world["listeners"].as_object().expect("listeners");
    world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
        .find(|g| {
            let listener = &listeners[g["listener_arn"].as_str().expect("arn")];
            g["spec"]["region"] == region
                && listener["accelerator_arn"] == arn.as_str()
                && listener["spec"]["portRanges"][0]["from"] == port
        })
        .and_then(|g| g["spec"]["trafficDial"].as_u64())
        .expect("endpoint group")
}
