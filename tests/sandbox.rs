//! The Global Accelerator sandbox, checked with an independent client:
//! boto3, the official AWS SDK for Python.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

struct Sandbox {
    child: std::process::Child,
    url: String,
}

impl Sandbox {
    fn start(sim: &std::path::Path) -> Self {
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
        Self {
            child,
            url: format!("http://{address}"),
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let sandbox = Sandbox::start(&sim);
    let python = std::env::var("MERIDIAN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ga_boto3.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&sandbox.url)
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
