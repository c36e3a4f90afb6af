//! Runners for the GCP tests: meridian without `--sim` against the Compute
//! Engine sandbox, and plain HTTP calls to the sandbox as another tool makes
//! them.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use super::Run;
use super::aws::Server;

/// The project the GCP tests use.
pub const PROJECT: &str = "acme-prod-314159";

/// Runs meridian without `--sim` and with no Google credentials anywhere:
/// the sandbox endpoint is on loopback, so the provider calls it anonymously.
pub fn gcp(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(dir)
        .env_remove("MERIDIAN_SIM")
        .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
        .env("CLOUDSDK_CONFIG", dir.join("no-gcloud-config"))
        .env("NO_COLOR", "1")
        .output()
        .expect("meridian runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One Compute Engine REST call to the sandbox: `path` is below
/// `/compute/v1/projects/{PROJECT}/global/`.
pub fn compute(
    sandbox: &Server,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, payload) = super::aws::http(
        sandbox,
        method,
        &format!("/compute/v1/projects/{PROJECT}/global/{path}"),
        &[("Content-Type", "application/json")],
        &body,
    );
    let payload = payload.as_str();
    // Chunked bodies: take the JSON between the first `{` and the last `}`.
    let json = match (payload.find('{'), payload.rfind('}')) {
        (Some(a), Some(b)) if b >= a => &payload[a..=b],
        _ => "null",
    };
    (
        status,
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

/// Sets one backend's capacity scaler through the API, as the console or
/// another tool would: read the service, change the one backend, patch the
/// backend list with the fingerprint just read.
pub fn set_scaler(sandbox: &Server, service: &str, group_suffix: &str, scaler: f64) {
    let (status, live) = compute(sandbox, "GET", &format!("backendServices/{service}"), None);
    assert_eq!(status, 200, "{live}");
    let mut backends = live["backends"].as_array().expect("backends").clone();
    let backend = backends
        .iter_mut()
        .find(|b| {
            b["group"]
                .as_str()
                .is_some_and(|g| g.ends_with(group_suffix))
        })
        .expect("the backend exists");
    backend["capacityScaler"] = serde_json::json!(scaler);
    let (status, answer) = compute(
        sandbox,
        "PATCH",
        &format!("backendServices/{service}"),
        Some(serde_json::json!({"backends": backends, "fingerprint": live["fingerprint"]})),
    );
    assert_eq!(status, 200, "{answer}");
}
