//! Adoption of an estate meridian did not build: accelerators made with
//! boto3 and a backend service with its health check made with Google's
//! Python client, against the sandbox. `import` writes their documents,
//! `plan` adopts them only, `apply` writes nothing but ownership, and every
//! cloud id and accelerator IP address survives; then a dial moves through
//! the usual path, `release` lets go without deleting, and a replacement
//! is blocked until its lost addresses are acknowledged.

mod common;

use std::path::Path;
use std::process::Command;

use common::aws::{clients, python, sandbox};
use common::{call_totals, sim_run, world};

const PROVIDERS: &str = "apiVersion: meridian.dev/v1alpha1
kind: Provider
metadata:
  name: aws-global
spec:
  type: aws
---
apiVersion: meridian.dev/v1alpha1
kind: Provider
metadata:
  name: gcp-prod
spec:
  type: gcp
  project: acme-prod-314159
";

/// The accelerator's ARN, IP addresses, listener and group ARNs, and the
/// backend service's id, from the simulated world.
fn identities(sim: &Path) -> serde_json::Value {
    let world = world(sim);
    let accelerators: Vec<serde_json::Value> = world["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .map(|a| serde_json::json!({"arn": a["arn"], "ips": a["ip_addresses"], "name": a["name"]}))
        .collect();
    let mut listeners: Vec<&String> = world["listeners"]
        .as_object()
        .expect("listeners")
        .keys()
        .collect();
    listeners.sort();
    let mut groups: Vec<&String> = world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .keys()
        .collect();
    groups.sort();
    let services: Vec<serde_json::Value> = world["backend_services"]
        .as_object()
        .expect("services")
        .values()
        .map(|s| serde_json::json!({"name": s["name"], "id": s["id"]}))
        .collect();
    serde_json::json!({"accelerators": accelerators, "listeners": listeners, "groups": groups, "services": services})
}

fn plan_json(dir: &Path, sim: &Path) -> serde_json::Value {
    let plan = sim_run(dir, sim, &["plan", "--format", "json"]);
    assert!(plan.code == 0 || plan.code == 2, "{}", plan.all());
    serde_json::from_str(&plan.stdout).expect("plan json")
}

/// A world holding only the Provider documents, with the estate of
/// tests/clients/estate.py built in it by the official clients: the
/// desired-state folder, the simulated world and the ids made.
fn estate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, serde_json::Value) {
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("providers.yaml"), PROVIDERS).expect("providers");
    let sim = dir.join("sim");
    let faults = sim_run(dir, &sim, &["sim", "faults", "--deploy-delay-ms", "20"]);
    assert_eq!(faults.code, 0, "{}", faults.all());
    let server = sandbox(&sim);
    let out = Command::new(python())
        .arg(clients().join("estate.py"))
        .args([server.url().as_str(), "acme-prod-314159"])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let made = serde_json::from_slice(&out.stdout).expect("ids");
    (folder, sim, made)
}

#[test]
fn an_estate_built_by_other_clients_is_imported_adopted_and_released_without_losing_an_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    // The estate, made by the official clients.
    let (folder, sim, made) = estate(dir);
    let before = identities(&sim);
    assert_eq!(before["accelerators"][0]["ips"], made["ips"], "{before}");

    // Import: one file per object, pinned to its cloud identity.
    let imported = folder.join("imported");
    for provider in ["aws-global", "gcp-prod"] {
        let run = sim_run(
            dir,
            &sim,
            &[
                "import",
                "desired-state",
                "--provider",
                provider,
                "--out",
                imported.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(run.code, 0, "{}", run.all());
    }
    let mut files: Vec<String> = std::fs::read_dir(&imported)
        .expect("imported")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "backendservice-shop.yaml",
            "globalaccelerator-checkout-api.yaml",
            "healthcheck-shop-hc.yaml"
        ]
    );
    let accelerator_doc =
        std::fs::read_to_string(imported.join("globalaccelerator-checkout-api.yaml")).expect("doc");
    let arn = made["accelerator"].as_str().expect("arn");
    assert!(
        accelerator_doc.contains(&format!("meridian.dev/external-id: \"{arn}\""))
            && accelerator_doc.contains("acceleratorName: Checkout-API")
            && accelerator_doc.contains("trafficDial: 40")
            && accelerator_doc.contains("weight: 200")
            && !accelerator_doc.contains("weight: 128")
            && !accelerator_doc.contains("intervalSeconds: 30"),
        "minimal, with what was set and nothing else:\n{accelerator_doc}"
    );
    // The filters select: by cloud name, identity and tag; no match, no document.
    let arn_text = arn.to_owned();
    for (filter, value, found) in [
        ("--name", "Checkout-API", true),
        ("--name", "Other", false),
        ("--id", arn_text.as_str(), true),
        ("--tag", "team=payments", true),
        ("--tag", "team=search", false),
    ] {
        let run = sim_run(
            dir,
            &sim,
            &[
                "import",
                "desired-state",
                "--provider",
                "aws-global",
                "--kind",
                "GlobalAccelerator",
                filter,
                value,
            ],
        );
        assert_eq!(run.code, 0, "{}", run.all());
        assert_eq!(
            run.stdout.contains("acceleratorName: Checkout-API"),
            found,
            "{filter} {value}: {}",
            run.all()
        );
    }
    let bad = sim_run(
        dir,
        &sim,
        &["import", "desired-state", "--provider", "nope"],
    );
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(
        bad.stderr.contains("no Provider document `nope`"),
        "{}",
        bad.all()
    );
    let bad = sim_run(
        dir,
        &sim,
        &[
            "import",
            "desired-state",
            "--provider",
            "gcp-prod",
            "--tag",
            "a=b",
        ],
    );
    assert_eq!(bad.code, 1, "GCP objects carry no labels: {}", bad.all());
    // Deterministic: a second import writes the same bytes.
    let again = sim_run(
        dir,
        &sim,
        &["import", "desired-state", "--provider", "aws-global"],
    );
    assert!(again.stdout.contains(&accelerator_doc), "{}", again.all());
    let validate = common::meridian(dir, &["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.all());

    // Plan: adopt actions only.
    let plan = plan_json(dir, &sim);
    let actions: Vec<(String, String)> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap_or("").to_owned(),
                c["address"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["adopt", "adopt", "adopt"],
        "{actions:?}"
    );
    assert_eq!(plan["summary"]["adopt"], 3);
    let text = sim_run(dir, &sim, &["plan"]);
    assert!(
        text.stdout.contains("@ GlobalAccelerator[checkout-api]")
            && text.stdout.contains("3 to adopt"),
        "{}",
        text.all()
    );

    let history_before = world(&sim)["history"].as_array().map_or(0, Vec::len);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let after = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(
        after.code,
        0,
        "empty after adoption: {}\n{}",
        after.all(),
        apply.all()
    );
    assert_eq!(
        identities(&sim),
        before,
        "every id and IP address unchanged"
    );
    let mut adoption: Vec<String> = world(&sim)["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["operation"].as_str().unwrap_or("").to_owned())
        .skip(history_before)
        .collect();
    adoption.sort();
    assert_eq!(
        adoption,
        ["TagResource", "backendServices.patch", "healthChecks.patch"],
        "adoption writes the ownership markers and nothing else"
    );

    // A dial edited in the imported document moves through the usual
    // progressive path: the team's policy of 25-point steps applies to it.
    std::fs::write(
        folder.join("policy.yaml"),
        "apiVersion: meridian.dev/v1alpha1\nkind: TrafficPolicy\nmetadata:\n  name: steps\nspec:\n  selector: {kind: GlobalAccelerator, names: [checkout-api]}\n  maxStepPercent: 25\n  bakeSeconds: 0\n",
    )
    .expect("policy");
    let doc = imported.join("globalaccelerator-checkout-api.yaml");
    let dialled = accelerator_doc.replace("trafficDial: 40", "trafficDial: 100");
    std::fs::write(&doc, &dialled).expect("edit");
    let plan = plan_json(dir, &sim);
    let dials: Vec<serde_json::Value> = plan["schedule"]["steps"]
        .as_array()
        .expect("a step schedule")
        .iter()
        .map(|s| s["changes"][0]["after"]["trafficDial"].clone())
        .collect();
    assert_eq!(dials, [65, 90, 100], "{plan}");
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(apply.stdout.contains("Step 3"), "{}", apply.all());
    let eu = made["groups"]["eu-west-1"].as_str().expect("group");
    assert_eq!(
        world(&sim)["endpoint_groups"][eu]["spec"]["trafficDial"],
        100
    );

    std::fs::remove_file(folder.join("policy.yaml")).expect("policy done");

    // A replacement (the document renamed, its pin removed) is blocked,
    // naming the addresses; the acknowledgement lets it through.
    let renamed = std::fs::read_to_string(&doc)
        .expect("doc")
        .replace("name: checkout-api", "name: checkout-v2")
        .replace(
            &format!("    meridian.dev/external-id: \"{arn}\"\n"),
            "    example.com/note: renamed\n",
        );
    std::fs::write(&doc, &renamed).expect("rename");
    let blocked = sim_run(dir, &sim, &["plan"]);
    assert_eq!(blocked.code, 3, "{}", blocked.all());
    let ips: Vec<String> = made["ips"]
        .as_array()
        .expect("ips")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_owned())
        .collect();
    for ip in &ips {
        assert!(
            blocked.all().contains(ip.as_str()),
            "names {ip}: {}",
            blocked.all()
        );
    }
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 3, "{}", apply.all());
    assert_eq!(
        identities(&sim),
        {
            let mut expected = before.clone();
            expected["accelerators"][0]["name"] = serde_json::json!("Checkout-API");
            expected
        },
        "nothing replaced while blocked"
    );
    std::fs::write(
        &doc,
        renamed.replace(
            "    example.com/note: renamed\n",
            &format!(
                "    example.com/note: renamed\n    meridian.dev/allow-replace: \"{}\"\n",
                ips.join(", ")
            ),
        ),
    )
    .expect("acknowledge");
    let acknowledged = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(acknowledged.code, 2, "allowed now: {}", acknowledged.all());
    // Put the pinned document back instead of replacing.
    std::fs::write(
        &doc,
        std::fs::read_to_string(&doc)
            .expect("doc")
            .replace("name: checkout-v2", "name: checkout-api"),
    )
    .expect("restore");
    let restore = dialled.clone();
    std::fs::write(&doc, &restore).expect("restore");
    let back = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(back.code, 0, "{}", back.all());

    // Deleting an adopted accelerator needs the same acknowledgement, on
    // its Provider.
    std::fs::remove_file(&doc).expect("remove the document");
    let blocked = sim_run(dir, &sim, &["plan"]);
    assert_eq!(blocked.code, 3, "{}", blocked.all());
    assert!(
        ips.iter().all(|ip| blocked.all().contains(ip.as_str()))
            && blocked.all().contains("which meridian adopted")
            && blocked.all().contains("Provider/aws-global"),
        "{}",
        blocked.all()
    );
    std::fs::write(&doc, &restore).expect("restore");

    // Release, then remove the documents: nothing is deleted.
    for target in [
        "GlobalAccelerator/checkout-api",
        "BackendService/shop",
        "HealthCheck/shop-hc",
    ] {
        let run = sim_run(
            dir,
            &sim,
            &["release", target, "--state-dir", "release-state"],
        );
        assert_eq!(run.code, 0, "{}", run.all());
    }
    // Each release write is a line of the trail in --state-dir.
    let trail = common::meridian(
        dir,
        &["audit", "--state-dir", "release-state", "--format", "json"],
    );
    assert_eq!(trail.code, 0, "{}", trail.all());
    let lines: Vec<serde_json::Value> = trail
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(!lines.is_empty(), "{}", trail.all());
    assert!(
        lines
            .iter()
            .all(|l| l["trigger"] == "release" && l["outcome"] == "ok"),
        "{lines:#?}"
    );
    let history = common::world(&sim)["history"]
        .as_array()
        .cloned()
        .expect("history");
    for line in &lines {
        assert!(
            history
                .iter()
                .any(|h| h["request_id"] == line["request_id"] && h["operation"] == line["call"]),
            "the cloud recorded {line:#}"
        );
    }
    std::fs::remove_dir_all(&imported).expect("remove documents");
    let (_, writes) = call_totals(&sim);
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing to delete: {}", plan.all());
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(call_totals(&sim).1, writes, "no write after release");
    let mut released = before.clone();
    released["accelerators"][0]["name"] = serde_json::json!("Checkout-API");
    assert_eq!(identities(&sim), released, "everything still runs");
    // The tags it had before adoption are all that is left.
    let imported_again = sim_run(
        dir,
        &sim,
        &["import", "desired-state", "--provider", "aws-global"],
    );
    assert!(
        imported_again
            .stdout
            .contains("acceleratorName: Checkout-API")
            && !imported_again.stdout.contains("trafficDial"),
        "importable again, at dial 100: {}",
        imported_again.all()
    );
}

fn tgw(moto: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(clients().join("tgw_check.py"))
        .arg(moto)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn a_transit_gateway_pair_made_in_moto_is_imported_adopted_and_released_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let sim = dir.join("sim");
    let moto = common::aws::moto();
    let moto_url = moto.url();
    let sandbox = sandbox(&sim);
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(
        folder.join("providers.yaml"),
        format!(
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: aws-global}}\nspec:\n  type: aws\n  endpoints: {{globalaccelerator: \"{}\", ec2: \"{moto_url}\"}}\n",
            sandbox.url()
        ),
    )
    .expect("write");
    let made = tgw(&moto_url, &["estate", "us-east-1", "eu-west-1"]);
    let regions = ["summary", "us-east-1", "eu-west-1"];
    let before = tgw(&moto_url, &regions);
    assert_eq!(
        before["routes"].as_array().map(Vec::len),
        Some(2),
        "{before}"
    );

    let imported = folder.join("imported");
    let run = common::aws::aws(
        dir,
        &[
            "import",
            "desired-state",
            "--provider",
            "aws-global",
            "--kind",
            "TransitGatewayMesh",
            "--out",
            imported.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let east = made["gateways"]["us-east-1"].as_str().expect("east");
    let west = made["gateways"]["eu-west-1"].as_str().expect("west");
    // Named after the gateway of the first region.
    let mesh = west.to_owned();
    let file = imported.join(format!("transitgatewaymesh-{mesh}.yaml"));
    let doc = std::fs::read_to_string(&file).unwrap_or_else(|_| panic!("{}", run.all()));
    assert!(
        doc.contains(&format!("meridian.dev/external-id: \"eu-west-1={west},us-east-1={east}\""))
            && doc.contains("amazonSideAsn: 64520")
            && doc.contains("  - region: eu-west-1\n    amazonSideAsn: 64521\n    cidrs:\n    - \"10.20.0.0/16\"\n    description: \"core hub west\"\n")
            && doc.contains("    cidrs:\n    - \"10.10.0.0/16\"\n    description: \"core hub east\"\n")
            && doc.contains("  peerings:\n  - requester: us-east-1\n    accepter: eu-west-1\n"),
        "{doc}"
    );
    assert_eq!(common::meridian(dir, &["validate"]).code, 0);

    let plan = common::aws::aws(dir, &["plan", "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("json");
    let actions: Vec<&str> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        ["adopt", "adopt", "adopt"],
        "two gateways and the peering: {plan:#}"
    );
    let apply = common::aws::aws(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let again = common::aws::aws(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "empty after adoption: {}", again.all());
    let after = tgw(&moto_url, &regions);
    let owners: Vec<&serde_json::Value> = after["gateways"]
        .as_array()
        .expect("gateways")
        .iter()
        .map(|g| &g["owner"])
        .collect();
    assert_eq!(
        owners,
        [
            &serde_json::json!("aws-global"),
            &serde_json::json!("aws-global")
        ],
        "{after}"
    );
    let mut unowned = after.clone();
    for g in unowned["gateways"].as_array_mut().expect("gateways") {
        g["owner"] = serde_json::Value::Null;
    }
    assert_eq!(unowned, before, "same gateways, peering and routes");

    let release = common::aws::aws(dir, &["release", &format!("TransitGatewayMesh/{mesh}")]);
    assert_eq!(release.code, 0, "{}", release.all());
    std::fs::remove_dir_all(&imported).expect("remove");
    let plan = common::aws::aws(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing to delete: {}", plan.all());
    assert_eq!(tgw(&moto_url, &regions), before, "untouched, unowned again");
}

#[test]
fn adoption_annotations_are_validated_with_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = common::copy_example(dir.path());
    // (file, the line the annotation follows, the annotation, the message)
    let cases = [
        (
            "global-accelerator.yaml",
            "  name: accounts-eu\n",
            "  annotations: {meridian.dev/external-id: \"arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/x\"}\n",
            "is not an accelerator ARN",
        ),
        (
            "gcp-load-balancing.yaml",
            "  name: app-health-check\n",
            "  annotations: {meridian.dev/external-id: \"https://compute.googleapis.com/compute/v1/projects/p/global/healthChecks/other\"}\n",
            "names `other`, but this document is `app-health-check`",
        ),
        (
            "gcp-load-balancing.yaml",
            "  name: app-health-check\n",
            "  annotations: {meridian.dev/external-id: \"projects/p/global/backendServices/app-health-check\"}\n",
            "is not a global healthChecks selfLink",
        ),
        (
            "transit-gateway.yaml",
            "  name: core\n",
            "  annotations: {meridian.dev/external-id: \"tgw-0123abc\"}\n",
            "does not say its region",
        ),
        (
            "transit-gateway.yaml",
            "  name: core\n",
            "  annotations: {meridian.dev/external-id: \"sa-east-1=tgw-0123abc\"}\n",
            "pins a gateway in sa-east-1, which the mesh does not declare",
        ),
        (
            "global-accelerator.yaml",
            "  name: accounts-eu\n",
            "  annotations: {meridian.dev/allow-replace: \"203.0.113.1, not-an-ip\"}\n",
            "`not-an-ip` is not an IP address",
        ),
        (
            "gcp-load-balancing.yaml",
            "  name: app-health-check\n",
            "  annotations: {meridian.dev/allow-replace: \"203.0.113.1\"}\n",
            "it goes on the GlobalAccelerator that replaces it",
        ),
    ];
    for (file, after, annotation, message) in cases {
        let path = folder.join(file);
        let original = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            original.matches(after).count(),
            1,
            "`{after}` once in {file}"
        );
        std::fs::write(
            &path,
            original.replace(after, &format!("{after}{annotation}")),
        )
        .expect("write");
        let run = common::meridian(dir.path(), &["validate"]);
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stderr.contains(&format!("{file}:"))
                && run.stderr.contains("metadata.annotations.meridian.dev/")
                && run.stderr.contains(message),
            "{message}: {}",
            run.all()
        );
        std::fs::write(&path, original).expect("restore");
    }
    // acceleratorName: 1-64 characters.
    let path = folder.join("global-accelerator.yaml");
    let original = std::fs::read_to_string(&path).expect("read");
    let provider_line = original
        .lines()
        .find(|l| l.trim_start().starts_with("provider:"))
        .expect("provider line")
        .to_owned();
    std::fs::write(
        &path,
        original.replacen(
            &provider_line,
            &format!("{provider_line}\n  acceleratorName: \"{}\"", "x".repeat(65)),
            1,
        ),
    )
    .expect("write");
    let run = common::meridian(dir.path(), &["validate"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("spec.acceleratorName") && run.stderr.contains("1-64 characters"),
        "{}",
        run.all()
    );
}

#[test]
fn an_imported_object_left_to_its_owner_is_never_adopted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let (folder, sim, _) = estate(dir);
    let imported = folder.join("imported");
    let run = sim_run(
        dir,
        &sim,
        &[
            "import",
            "desired-state",
            "--provider",
            "aws-global",
            "--out",
            imported.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let doc = imported.join("globalaccelerator-checkout-api.yaml");
    let text = std::fs::read_to_string(&doc).expect("doc");
    let pinned = "  annotations:\n";
    let observe = text.replace(
        pinned,
        "  annotations:\n    meridian.dev/management: observe\n",
    );
    std::fs::write(&doc, &observe).expect("observe");

    // Nothing differs: no change, no drift, and no marker written.
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 0, "{}", drift.all());
    // Another writer moves a dial: drift, and apply writes nothing.
    let set = sim_run(
        dir,
        &sim,
        &["sim", "set-dial", "Checkout-API", "eu-west-1", "10"],
    );
    assert_eq!(set.code, 0, "{}", set.all());
    let drift = sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("trafficDial: live 10, desired 40"),
        "{}",
        drift.all()
    );
    let (_, writes) = call_totals(&sim);
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert_eq!(
        call_totals(&sim).1,
        writes,
        "observe: nothing written, not even the marker"
    );

    // Traffic: the dial is written, the marker is not, and a field another
    // writer changed stays as that writer left it.
    let eu_group = world(&sim)["endpoint_groups"]
        .as_object()
        .expect("groups")
        .iter()
        .find(|(_, g)| g["spec"]["region"] == "eu-west-1")
        .map(|(arn, _)| arn.clone())
        .expect("eu group");
    {
        let server = sandbox(&sim);
        let (status, answer) = common::aws::ga_call(
            &server,
            "UpdateEndpointGroup",
            serde_json::json!({"EndpointGroupArn": eu_group, "HealthCheckPath": "/other-owner"}),
        );
        assert_eq!(status, 200, "{answer}");
    }
    std::fs::write(
        &doc,
        observe.replace("management: observe", "management: traffic"),
    )
    .expect("traffic");
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("UpdateEndpointGroup") && !apply.stdout.contains("TagResource"),
        "{}",
        apply.all()
    );
    let world = world(&sim);
    let group = world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .values()
        .find(|g| g["spec"]["region"] == "eu-west-1")
        .expect("group");
    assert_eq!(group["spec"]["trafficDial"], 40);
    assert_eq!(
        group["spec"]["healthCheck"]["path"], "/other-owner",
        "{group}"
    );
    let reimport = sim_run(
        dir,
        &sim,
        &["import", "desired-state", "--provider", "aws-global"],
    );
    assert!(
        reimport.stdout.contains("acceleratorName: Checkout-API"),
        "still nobody's but its owner's, so importable: {}",
        reimport.all()
    );
}

#[test]
fn a_replacement_applies_only_once_its_lost_addresses_are_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("providers.yaml"), PROVIDERS).expect("providers");
    let sim = dir.join("sim");
    let faults = sim_run(dir, &sim, &["sim", "faults", "--deploy-delay-ms", "20"]);
    assert_eq!(faults.code, 0, "{}", faults.all());
    let doc = |name: &str, annotations: &str| {
        format!(
            "apiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata:\n  name: {name}\n{annotations}spec:\n  provider: aws-global\n  listeners:\n    - name: https\n      protocol: TCP\n      portRanges: [{{from: 443, to: 443}}]\n      endpointGroups:\n        - region: us-east-1\n          endpoints: [{{id: \"arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/app/edge/1\"}}]\n"
        )
    };
    let file = folder.join("edge.yaml");
    std::fs::write(&file, doc("edge", "")).expect("doc");
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let ips: Vec<String> = world(&sim)["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .flat_map(|a| a["ip_addresses"].as_array().cloned().unwrap_or_default())
        .map(|ip| ip.as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");

    // Renamed: the old accelerator would be deleted and a new one made.
    std::fs::write(&file, doc("edge-v2", "")).expect("rename");
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 3, "{}", apply.all());
    assert!(
        ips.iter().all(|ip| apply.all().contains(ip.as_str()))
            && apply
                .all()
                .contains("replaces GlobalAccelerator[edge] with GlobalAccelerator/edge-v2"),
        "{}",
        apply.all()
    );
    assert_eq!(
        world(&sim)["accelerators"].as_object().map(|a| a.len()),
        Some(1)
    );

    // Acknowledging only one address is not enough.
    let ack = |list: &str| format!("  annotations:\n    meridian.dev/allow-replace: \"{list}\"\n");
    std::fs::write(&file, doc("edge-v2", &ack(&ips[0]))).expect("half");
    assert_eq!(sim_run(dir, &sim, &["plan"]).code, 3);
    std::fs::write(&file, doc("edge-v2", &ack(&ips.join(", ")))).expect("ack");
    let apply = sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let world = world(&sim);
    let names: Vec<&str> = world["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .map(|a| a["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["edge-v2"], "replaced");

    // Letting go of an unpinned document needs --force: kept, it would
    // create a new accelerator once released.
    let release = sim_run(dir, &sim, &["release", "GlobalAccelerator/edge-v2"]);
    assert_eq!(release.code, 1, "{}", release.all());
    assert!(
        release.stderr.contains("is not pinned"),
        "{}",
        release.all()
    );
    let release = sim_run(
        dir,
        &sim,
        &["release", "GlobalAccelerator/edge-v2", "--force"],
    );
    assert_eq!(release.code, 0, "{}", release.all());
    std::fs::remove_file(&file).expect("remove");
    let plan = sim_run(dir, &sim, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing to delete: {}", plan.all());
    assert_eq!(
        common::world(&sim)["accelerators"]
            .as_object()
            .map(|a| a.len()),
        Some(1),
        "still running"
    );
}
