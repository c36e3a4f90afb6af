//! The sandbox's EC2 Transit Gateway API, checked with two independent
//! clients: boto3 (the official AWS SDK for Python, through
//! `tests/clients/tgw_check.py`) and the AWS CLI, and by meridian's real
//! `aws` provider (the official `aws-sdk-ec2`), the latter for Global
//! Accelerator and EC2 at once.

mod common;

use std::path::Path;
use std::process::Command;

use common::aws::{aws, clients, python};

/// `tgw_check.py URL ARGS...`, which must succeed.
fn tgw_check(url: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(clients().join("tgw_check.py"))
        .arg(url)
        .args(args)
        .output()
        .expect("python runs (scripts/test.sh installs boto3 into .venv)");
    assert!(
        output.status.success(),
        "tgw_check.py {args:?} against the sandbox failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Gateways, peerings and routes of the example's three regions, as boto3 sees them.
fn summary(url: &str) -> serde_json::Value {
    let out = tgw_check(
        url,
        &["summary", "us-east-1", "eu-central-1", "ap-southeast-1"],
    );
    serde_json::from_str(&out).expect("json")
}

/// The example mesh as boto3 sees it: three gateways, a full mesh of
/// available peerings, two active routes per gateway through live peerings.
fn assert_example_mesh(live: &serde_json::Value) {
    let gateways = live["gateways"].as_array().expect("gateways");
    assert_eq!(
        gateways
            .iter()
            .map(|g| (
                g["region"].as_str().unwrap_or(""),
                g["asn"].as_u64().unwrap_or(0)
            ))
            .collect::<Vec<_>>(),
        [
            ("ap-southeast-1", 64514),
            ("eu-central-1", 64513),
            ("us-east-1", 64512)
        ],
        "{live:#}"
    );
    assert!(
        gateways.iter().all(|g| g["owner"] == "aws-global"),
        "{live:#}"
    );
    let peerings = live["peerings"].as_array().expect("peerings");
    assert_eq!(
        peerings
            .iter()
            .map(|p| (
                p["requester"].as_str().unwrap_or(""),
                p["accepter"].as_str().unwrap_or(""),
                p["state"].as_str().unwrap_or("")
            ))
            .collect::<Vec<_>>(),
        [
            ("eu-central-1", "ap-southeast-1", "available"),
            ("us-east-1", "ap-southeast-1", "available"),
            ("us-east-1", "eu-central-1", "available"),
        ],
        "{live:#}"
    );
    let routes = live["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 6, "{live:#}");
    assert!(
        routes
            .iter()
            .all(|r| r["state"] == "active" && r["through_live_peering"] == true),
        "{live:#}"
    );
    let us_east: Vec<&str> = routes
        .iter()
        .filter(|r| r["region"] == "us-east-1")
        .filter_map(|r| r["cidr"].as_str())
        .collect();
    assert_eq!(us_east, ["10.2.0.0/16", "10.3.0.0/16"], "{live:#}");
}

fn write_mesh(folder: &Path, providers: &str) {
    std::fs::create_dir_all(folder).expect("mkdir");
    std::fs::write(folder.join("providers.yaml"), providers).expect("write");
    std::fs::copy(
        common::example_dir().join("transit-gateway.yaml"),
        folder.join("transit-gateway.yaml"),
    )
    .expect("copy");
}

#[test]
fn boto3_sees_the_example_mesh_in_the_sandbox_and_deletes_a_peering_with_its_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let sim = dir.join("sim");
    write_mesh(
        &dir.join("desired-state"),
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-global}\nspec:\n  type: aws\n",
    );
    let apply = common::sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let sandbox = common::aws::sandbox(&sim);
    let url = sandbox.url();

    assert_example_mesh(&summary(&url));

    let deleted = tgw_check(&url, &["delete-peering", "us-east-1", "eu-central-1"]);
    assert!(deleted.starts_with("deleted tgw-attach-"), "{deleted}");
    let world = common::world(&sim);
    assert_eq!(
        world["peerings"].as_object().map(|p| p.len()),
        Some(2),
        "boto3's delete landed in the simulated world: {world:#}"
    );
    assert_eq!(
        world["calls"]["DeleteTransitGatewayPeeringAttachment"]["ok"].as_u64(),
        Some(1)
    );
    let live = summary(&url);
    assert_eq!(
        live["routes"].as_array().map(Vec::len),
        Some(4),
        "the two routes through the deleted peering went with it: {live:#}"
    );
    let drift = common::sim_run(dir, &sim, &["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    assert!(
        drift
            .stdout
            .contains("TransitGatewayMesh[core].peering[us-east-1].to[eu-central-1]"),
        "{}",
        drift.all()
    );
}

#[test]
fn the_aws_provider_builds_the_example_mesh_in_the_sandbox_and_recreates_a_deleted_peering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let sim = dir.join("sim");
    let sandbox = common::aws::sandbox(&sim);
    let url = sandbox.url();
    write_mesh(
        &dir.join("desired-state"),
        &format!(
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: aws-global}}\nspec:\n  type: aws\n  endpoints: {{globalaccelerator: \"{url}\", ec2: \"{url}\"}}\n"
        ),
    );

    let apply = aws(dir, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        apply.stdout.contains("Applied 12 of 12 change(s)"),
        "{}",
        apply.all()
    );
    let replan = aws(dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(replan.code, 0, "{}", replan.all());

    let live = summary(&url);
    assert_eq!(
        live["gateways"][0],
        serde_json::json!({"region": "ap-southeast-1", "asn": 64514, "owner": "aws-global"})
    );
    assert_example_mesh(&live);
    // Both protocols were spoken: the provider observed Global Accelerator
    // and Transit Gateway through the one sandbox.
    let world = common::world(&sim);
    for operation in [
        "ListAccelerators",
        "DescribeRegions",
        "CreateTransitGateway",
        "AcceptTransitGatewayPeeringAttachment",
        "CreateTransitGatewayRoute",
        "SearchTransitGatewayRoutes",
    ] {
        assert!(
            world["calls"][operation]["ok"].as_u64().unwrap_or(0) >= 1,
            "{operation} was never called: {:#}",
            world["calls"]
        );
    }

    tgw_check(&url, &["delete-peering", "us-east-1", "eu-central-1"]);
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
    let live = summary(&url);
    assert_example_mesh(&live);
}

/// The AWS CLI (on botocore, from PyPI) against the sandbox in `region`;
/// its JSON answer, which must be a success.
fn aws_cli(url: &str, region: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(python())
        .args(["-m", "awscli"])
        .args(args)
        .args([
            "--endpoint-url",
            url,
            "--region",
            region,
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the AWS CLI runs (scripts/test.sh installs awscli into .venv)");
    assert!(
        output.status.success(),
        "aws {args:?} in {region} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&stdout).expect("json")
    }
}

fn gateway_tags(owner: Option<&str>, name: &str) -> String {
    let mut tags = vec![format!("{{Key=Name,Value={name}}}")];
    if let Some(owner) = owner {
        tags.push("{Key=meridian.dev/managed-by,Value=meridian}".to_owned());
        tags.push(format!("{{Key=meridian.dev/owner,Value={owner}}}"));
        tags.push("{Key=meridian.dev/mesh,Value=core}".to_owned());
    }
    format!("ResourceType=transit-gateway,Tags=[{}]", tags.join(","))
}

#[test]
fn the_aws_cli_drives_transit_gateways_and_what_it_changes_is_drift_meridian_repairs() {
    // A second independent client of the EC2 sandbox besides boto3: the AWS
    // CLI creates, pages, deletes; meridian's drift sees it; meridian's
    // repair is what the CLI reads back.
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let sim = dir.join("sim");
    write_mesh(
        &dir.join("desired-state"),
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-global}\nspec:\n  type: aws\n",
    );
    let apply = common::sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{}", apply.all());
    let quotas = common::sim_run(
        dir,
        &sim,
        &["sim", "quotas", "--transit-gateways-per-region", "8"],
    );
    assert_eq!(quotas.code, 0, "{}", quotas.all());
    let sandbox = common::aws::sandbox(&sim);
    let url = sandbox.url();

    // What meridian made, as the CLI reads it.
    let east = aws_cli(&url, "us-east-1", &["ec2", "describe-transit-gateways"]);
    let gateways = east["TransitGateways"].as_array().expect("gateways");
    assert_eq!(gateways.len(), 1, "{east:#}");
    assert_eq!(gateways[0]["Options"]["AmazonSideAsn"], 64512);
    let table = gateways[0]["Options"]["AssociationDefaultRouteTableId"]
        .as_str()
        .expect("route table")
        .to_owned();

    // Create: one gateway under meridian's ownership in a region the mesh
    // does not have, five of another team's beside it.
    aws_cli(
        &url,
        "us-west-2",
        &[
            "ec2",
            "create-transit-gateway",
            "--description",
            "stray",
            "--tag-specifications",
            &gateway_tags(Some("aws-global"), "core-us-west-2"),
        ],
    );
    for n in 0..5 {
        aws_cli(
            &url,
            "us-west-2",
            &[
                "ec2",
                "create-transit-gateway",
                "--description",
                "another team's",
                "--tag-specifications",
                &gateway_tags(None, &format!("other-{n}")),
            ],
        );
    }
    // Update: the CLI changes another team's gateway and reads it back.
    let others = aws_cli(
        &url,
        "us-west-2",
        &[
            "ec2",
            "describe-transit-gateways",
            "--filters",
            "Name=tag:Name,Values=other-0",
        ],
    );
    let other = others["TransitGateways"][0]["TransitGatewayId"]
        .as_str()
        .expect("other-0")
        .to_owned();
    aws_cli(
        &url,
        "us-west-2",
        &[
            "ec2",
            "modify-transit-gateway",
            "--transit-gateway-id",
            &other,
            "--description",
            "another team's",
        ],
    );
    // Paging: the CLI follows NextToken over pages of five.
    let describes = |world: &serde_json::Value| {
        world["calls"]["DescribeTransitGateways"]["ok"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = describes(&common::world(&sim));
    let west = aws_cli(
        &url,
        "us-west-2",
        &["ec2", "describe-transit-gateways", "--page-size", "5"],
    );
    assert_eq!(
        west["TransitGateways"].as_array().map(Vec::len),
        Some(6),
        "{west:#}"
    );
    assert_eq!(describes(&common::world(&sim)), before + 2, "two pages");

    // Delete: one of meridian's routes.
    aws_cli(
        &url,
        "us-east-1",
        &[
            "ec2",
            "delete-transit-gateway-route",
            "--transit-gateway-route-table-id",
            &table,
            "--destination-cidr-block",
            "10.2.0.0/16",
        ],
    );
    let drift = common::sim_run(dir, &sim, &["drift", "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all());
    let report: serde_json::Value = serde_json::from_str(&drift.stdout).expect("json");
    let found: Vec<(String, String)> = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            (
                r["address"].as_str().unwrap_or_default().to_owned(),
                r["drift"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "TransitGatewayMesh[core].gateway[us-east-1].route[10.2.0.0/16]".to_owned(),
                "missing".to_owned()
            ),
            (
                "TransitGatewayMesh[core].gateway[us-west-2]".to_owned(),
                "unexpected".to_owned()
            ),
        ],
        "only meridian's own objects are drift; the other team's gateways are not"
    );

    let repair = common::sim_run(dir, &sim, &["apply", "--yes"]);
    assert_eq!(repair.code, 0, "{}", repair.all());
    let routes = aws_cli(
        &url,
        "us-east-1",
        &[
            "ec2",
            "search-transit-gateway-routes",
            "--transit-gateway-route-table-id",
            &table,
            "--filters",
            "Name=type,Values=static",
        ],
    );
    let mut cidrs: Vec<&str> = routes["Routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["DestinationCidrBlock"].as_str())
        .collect();
    cidrs.sort_unstable();
    assert_eq!(cidrs, ["10.2.0.0/16", "10.3.0.0/16"], "{routes:#}");
    let west = aws_cli(&url, "us-west-2", &["ec2", "describe-transit-gateways"]);
    let live: Vec<(&str, &str)> = west["TransitGateways"]
        .as_array()
        .expect("gateways")
        .iter()
        .map(|g| {
            (
                g["Description"].as_str().unwrap_or_default(),
                g["State"].as_str().unwrap_or_default(),
            )
        })
        .filter(|(_, state)| *state != "deleted")
        .collect();
    assert_eq!(
        live,
        vec![("another team's", "available"); 5],
        "meridian deleted its stray gateway and nothing else"
    );
}

#[test]
fn boto3_creates_pages_modifies_and_deletes_gateways_peerings_and_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("sim");
    let quotas = common::sim_run(
        dir.path(),
        &sim,
        &["sim", "quotas", "--transit-gateways-per-region", "8"],
    );
    assert_eq!(quotas.code, 0, "{}", quotas.all());
    let sandbox = common::aws::sandbox(&sim);
    let out = tgw_check(&sandbox.url(), &["crud", "us-west-2", "eu-west-1"]);
    assert!(out.contains("crud ok"), "{out}");
    let world = common::world(&sim);
    for operation in [
        "CreateTransitGateway",
        "ModifyTransitGateway",
        "CreateTransitGatewayPeeringAttachment",
        "AcceptTransitGatewayPeeringAttachment",
        "CreateTransitGatewayRoute",
        "ReplaceTransitGatewayRoute",
        "DeleteTransitGatewayRoute",
        "DeleteTransitGatewayPeeringAttachment",
        "DeleteTransitGateway",
    ] {
        assert!(
            world["calls"][operation]["ok"].as_u64().unwrap_or(0) >= 1,
            "{operation}: {:#}",
            world["calls"][operation]
        );
    }
    assert_eq!(
        world["routes"],
        serde_json::json!({}),
        "{:#}",
        world["routes"]
    );
}
