//! The Global Accelerator sandbox, checked with an independent client:
//! boto3, the official AWS SDK for Python.

mod common;

use std::process::Command;

#[test]
fn boto3_works_against_the_sandbox_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    assert_eq!(
        common::sim_run(
            dir.path(),
            &sim,
            &["sim", "faults", "--deploy-delay-ms", "50"]
        )
        .code,
        0
    );
    let sandbox = common::aws::sandbox(&sim);
    let script = common::aws::clients().join("ga_boto3.py");
    let output = Command::new(common::aws::python())
        .arg(script)
        .arg(sandbox.url())
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "boto3 against the sandbox failed (scripts/test.sh installs boto3 into .venv):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("boto3 ok"));
    // The calls were real: the simulated world counted them.
    let world = common::world(&sim);
    assert!(
        world["calls"]["CreateEndpointGroup"]["ok"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    assert!(
        world["calls"]["ListAccelerators"]["ok"]
            .as_u64()
            .unwrap_or(0)
            >= 3
    );
}

/// Runs the AWS CLI (`python -m awscli`) against the sandbox.
fn aws_cli(sandbox: &common::aws::Server, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(common::aws::python())
        .args(["-m", "awscli"])
        .args(args)
        .args([
            "--endpoint-url",
            &sandbox.url(),
            "--region",
            "us-west-2",
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the AWS CLI runs (scripts/test.sh installs awscli into .venv)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_aws_cli_and_meridian_see_the_same_accelerators() {
    // A second independent client (the AWS CLI, on botocore) against the
    // sandbox that meridian's own aws provider uses under --sim: what one
    // changes, the other reads.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let sim = root.join("sim");
    common::copy_example(root);
    let faults = common::sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]);
    assert_eq!(faults.code, 0, "{}", faults.all());
    let apply = common::sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let sandbox = common::aws::sandbox(&sim);

    // The CLI lists what meridian created, following page tokens itself.
    let (ok, out, err) = aws_cli(
        &sandbox,
        &["globalaccelerator", "list-accelerators", "--page-size", "1"],
    );
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).expect("json");
    let mut names: Vec<&str> = listed["Accelerators"]
        .as_array()
        .expect("accelerators")
        .iter()
        .filter_map(|a| a["Name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["accounts-eu", "api"]);
    let api = listed["Accelerators"]
        .as_array()
        .expect("accelerators")
        .iter()
        .find(|a| a["Name"] == "api")
        .and_then(|a| a["AcceleratorArn"].as_str())
        .expect("api")
        .to_owned();
    let (ok, out, err) = aws_cli(
        &sandbox,
        &[
            "globalaccelerator",
            "describe-accelerator-attributes",
            "--accelerator-arn",
            &api,
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"FlowLogsEnabled\": false"), "{out}");

    // A change by the CLI is drift to meridian, and meridian's correction
    // is what the CLI reads next.
    let world = common::world(&sim);
    let group = world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .iter()
        .find(|(_, g)| {
            g["spec"]["region"] == "eu-central-1"
                && g["listener_arn"]
                    .as_str()
                    .is_some_and(|l| l.starts_with(&api))
                && g["spec"]["healthCheck"]["protocol"] == "HTTPS"
        })
        .map(|(arn, _)| arn.clone())
        .expect("the https group in eu-central-1");
    let (ok, _, err) = aws_cli(
        &sandbox,
        &[
            "globalaccelerator",
            "update-endpoint-group",
            "--endpoint-group-arn",
            &group,
            "--traffic-dial-percentage",
            "30",
        ],
    );
    assert!(ok, "{err}");
    let drift = common::sim_run(root, &sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift.stdout.contains("trafficDial") && drift.stdout.contains("30"),
        "{}",
        drift.all()
    );
    let restore = common::sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(restore.code, 0, "{}", restore.all());
    let (ok, out, err) = aws_cli(
        &sandbox,
        &[
            "globalaccelerator",
            "describe-endpoint-group",
            "--endpoint-group-arn",
            &group,
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"TrafficDialPercentage\": 100.0"), "{out}");

    // Create, update, delete by the CLI: an accelerator under meridian's
    // ownership that desired state does not declare is drift to meridian
    // ("unexpected"), and the CLI reads meridian's clean-up.
    let (ok, out, err) = aws_cli(
        &sandbox,
        &[
            "globalaccelerator",
            "create-accelerator",
            "--name",
            "cli-made",
            "--idempotency-token",
            "cli-made-1",
            "--tags",
            "Key=meridian.dev/managed-by,Value=meridian",
            "Key=meridian.dev/owner,Value=aws-global",
            "Key=meridian.dev/name,Value=cli-made",
        ],
    );
    assert!(ok, "{err}");
    let made: serde_json::Value = serde_json::from_str(&out).expect("json");
    let made_arn = made["Accelerator"]["AcceleratorArn"]
        .as_str()
        .expect("arn")
        .to_owned();
    let (ok, out, err) = aws_cli(
        &sandbox,
        &[
            "globalaccelerator",
            "update-accelerator",
            "--accelerator-arn",
            &made_arn,
            "--ip-address-type",
            "IPV4",
            "--no-enabled",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"Enabled\": false"), "{out}");
    let drift = common::sim_run(root, &sim, &["drift", "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    let report: serde_json::Value = serde_json::from_str(&drift.stdout).expect("json");
    assert!(
        report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .any(|r| r["address"] == "GlobalAccelerator[cli-made]" && r["drift"] == "unexpected"),
        "{report:#}"
    );
    let apply = common::sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let (ok, _, err) = aws_cli(
        &sandbox,
        &[
            "globalaccelerator",
            "describe-accelerator",
            "--accelerator-arn",
            &made_arn,
        ],
    );
    assert!(!ok && err.contains("AcceleratorNotFoundException"), "{err}");

    // The CLI deletes one of its own, disabled first, as the API requires.
    let (ok, out, err) = aws_cli(
        &sandbox,
        &[
            "globalaccelerator",
            "create-accelerator",
            "--name",
            "cli-own",
            "--no-enabled",
        ],
    );
    assert!(ok, "{err}");
    let own: serde_json::Value = serde_json::from_str(&out).expect("json");
    let own_arn = own["Accelerator"]["AcceleratorArn"]
        .as_str()
        .expect("arn")
        .to_owned();
    let mut deleted = false;
    for _ in 0..100 {
        // Deletable once DEPLOYED (the sandbox deploys in 50 ms here).
        let (ok, _, err) = aws_cli(
            &sandbox,
            &[
                "globalaccelerator",
                "delete-accelerator",
                "--accelerator-arn",
                &own_arn,
            ],
        );
        if ok {
            deleted = true;
            break;
        }
        assert!(err.contains("AcceleratorNotDisabledException"), "{err}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(deleted, "the CLI deleted its disabled accelerator");
    let names: Vec<String> = common::world(&sim)["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("cli-")), "{names:?}");

    // Outside the standard-accelerator API: a clear refusal.
    let (ok, _, err) = aws_cli(
        &sandbox,
        &["globalaccelerator", "list-custom-routing-accelerators"],
    );
    assert!(!ok, "custom routing is not served");
    assert!(
        err.contains("UnknownOperationException") && err.contains("custom routing accelerators"),
        "{err}"
    );
}
