//! The `aws` provider's Transit Gateway half (official `aws-sdk-ec2`) against
//! moto's EC2 emulator, an independent implementation of the EC2 API,
//! started on loopback by the test. The Global Accelerator half points at
//! meridian's sandbox so the provider observes both families.

mod common;

use std::process::Command;

use common::aws::{aws, clients, python};

fn summary(moto: &str) -> serde_json::Value {
    let output = Command::new(python())
        .arg(clients().join("tgw_check.py"))
        .args([
            moto,
            "summary",
            "us-east-1",
            "eu-central-1",
            "ap-southeast-1",
        ])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

#[test]
fn the_example_mesh_is_built_in_moto_and_a_deleted_peering_is_recreated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let sim = dir.join("sim");
    let moto = common::aws::moto();
    let moto_url = moto.url();
    let sandbox = common::aws::sandbox(&sim);
    let sandbox_url = sandbox.url();
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("providers.yaml"), format!("apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: aws-global}}\nspec:\n  type: aws\n  endpoints: {{globalaccelerator: \"{sandbox_url}\", ec2: \"{moto_url}\"}}\n")).expect("write");
    std::fs::copy(
        common::example_dir().join("transit-gateway.yaml"),
        folder.join("transit-gateway.yaml"),
    )
    .expect("copy");

    let apply = aws(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("Applied 12 of 12 change(s)"),
        "{}",
        apply.all()
    );
    let replan = aws(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.code, 0, "{}", replan.all());

    let live = summary(&moto_url);
    assert_eq!(
        live["gateways"].as_array().map(Vec::len),
        Some(3),
        "{live:#}"
    );
    assert_eq!(
        live["gateways"][0],
        serde_json::json!({"region": "ap-southeast-1", "asn": 64514, "owner": "aws-global"})
    );
    let peerings = live["peerings"].as_array().expect("peerings");
    assert_eq!(peerings.len(), 3, "{live:#}");
    assert!(
        peerings.iter().all(|p| p["state"] == "available"),
        "{live:#}"
    );
    assert_eq!(live["routes"].as_array().map(Vec::len), Some(6), "{live:#}");
    assert!(
        live["routes"]
            .as_array()
            .expect("routes")
            .iter()
            .all(|r| r["state"] == "active")
    );

    let deleted = Command::new(python())
        .arg(clients().join("tgw_check.py"))
        .args([
            moto_url.as_str(),
            "delete-peering",
            "us-east-1",
            "eu-central-1",
        ])
        .output()
        .expect("python");
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    let drift = aws(dir, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("TransitGatewayMesh[core].peering[us-east-1].to[eu-central-1]"),
        "{}",
        drift.all()
    );
    let repair = aws(dir, &["apply", "--yes"]);
    assert_eq!(repair.code, 0, "{}", repair.all());
    assert_eq!(aws(dir, &["plan", "--detailed-exitcode"]).code, 0);
    let live = summary(&moto_url);
    assert_eq!(
        live["peerings"].as_array().map(Vec::len),
        Some(3),
        "{live:#}"
    );
    assert_eq!(
        live["routes"].as_array().map(Vec::len),
        Some(6),
        "the routes through the new peering are back: {live:#}"
    );
}
