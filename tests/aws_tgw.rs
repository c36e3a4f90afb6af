//! The `aws` provider's Transit Gateway half (official `aws-sdk-ec2`) against
//! moto's EC2 emulator, an independent implementation of the EC2 API,
//! started on loopback by the test. The Global Accelerator half points at
//! meridian's sandbox so the provider observes both families.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn python() -> String {
    std::env::var("MERIDIAN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn clients() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let child = Command::new(python())
        .arg(clients().join("moto_server.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts (scripts/test.sh installs moto[server] into .venv)");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "moto did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (Server(child), format!("http://127.0.0.1:{port}"))
}

fn sandbox(sim: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args([
            "--sim",
            sim.to_str().expect("utf-8"),
            "sandbox",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let address = line.trim().rsplit(' ').next().expect("address").to_owned();
    (Server(child), format!("http://{address}"))
}

fn aws(dir: &Path, args: &[&str]) -> common::Run {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(dir)
        .env_remove("MERIDIAN_SIM")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "sandbox-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("NO_COLOR", "1")
        .output()
        .expect("meridian runs");
    common::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

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
    let (_moto, moto_url) = moto();
    let (_sandbox, sandbox_url) = sandbox(&sim);
    let folder = dir.join("desired-state");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("providers.yaml"), format!("apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: aws-global}}\nspec:\n  type: aws\n  region: us-west-2\n  endpoints: {{globalaccelerator: \"{sandbox_url}\", ec2: \"{moto_url}\"}}\n")).expect("write");
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
