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
