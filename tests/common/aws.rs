//! Servers and runners for the AWS tests: meridian's Global Accelerator
//! sandbox, moto's EC2 emulator, and meridian run without `--sim`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Run;

/// A child process killed when dropped.
pub struct Server {
    child: Child,
    /// `host:port` it listens on.
    pub address: String,
}

impl Server {
    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python with the test checkers (boto3, moto, prometheus-client).
pub fn python() -> String {
    std::env::var("MERIDIAN_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// The folder of the Python clients.
pub fn clients() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Starts `meridian --sim SIM sandbox` on a free loopback port.
pub fn sandbox(sim: &Path) -> Server {
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
    Server { child, address }
}

/// Starts moto's server (with meridian's fixes) on a free loopback port.
pub fn moto() -> Server {
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
    Server {
        child,
        address: format!("127.0.0.1:{port}"),
    }
}

/// One HTTP/1.1 request to a server, as any client makes it: the status
/// and the body.
pub fn http(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(&server.address).expect("connect");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.address,
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let payload = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, payload.to_owned())
}

/// One Global Accelerator API call to the sandbox, as any client makes it.
pub fn ga_call(
    sandbox: &Server,
    operation: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let target = format!("GlobalAccelerator_V20180706.{operation}");
    let (status, payload) = http(
        sandbox,
        "POST",
        "/",
        &[
            ("X-Amz-Target", target.as_str()),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        &body.to_string(),
    );
    (
        status,
        serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
    )
}

/// Runs meridian without `--sim`, with dummy credentials and no instance metadata.
pub fn aws(dir: &Path, args: &[&str]) -> Run {
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
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
