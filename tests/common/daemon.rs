//! A `meridian run` process for the tests, with a tiny HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    /// Its HTTP port.
    pub port: u16,
    /// The webhooks' own port, when started with `--webhook-listen`.
    pub webhook_port: Option<u16>,
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Response {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Daemon {
    /// Starts `meridian --sim SIM run ARGS` with `WEBHOOK_SECRET` in its environment.
    pub fn start(sim: &Path, args: &[&str], secret: Option<&str>) -> Self {
        Self::start_logged(sim, args, secret, &sim.with_extension("daemon.log"))
    }

    /// As [`Self::start`], logging to `log` (several daemons on one world).
    pub fn start_logged(sim: &Path, args: &[&str], secret: Option<&str>, log: &Path) -> Self {
        Self::start_with_env(sim, args, secret, &[], log)
    }

    /// As [`Self::start_logged`], with more variables in its environment.
    pub fn start_with_env(
        sim: &Path,
        args: &[&str],
        secret: Option<&str>,
        env: &[(&str, &str)],
        log: &Path,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_meridian"));
        command
            .arg("--sim")
            .arg(sim)
            .arg("run")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        command
            .env_remove("MERIDIAN_SIM")
            .env("MERIDIAN_LOG", "info")
            .envs(env.iter().copied());
        if let Some(secret) = secret {
            command
                .env("WEBHOOK_SECRET", secret)
                .args(["--webhook-secret-env", "WEBHOOK_SECRET"]);
        }
        let log = log.to_path_buf();
        command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let mut child = command.spawn().expect("meridian run starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut port = |what: &str| {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("a line");
            line.strip_prefix(what)
                .and_then(|rest| rest.trim().rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "no `{what}` line, got `{line}`; log: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                })
        };
        let main = port("meridian: listening on ");
        let webhook_port = args
            .contains(&"--webhook-listen")
            .then(|| port("meridian: webhooks on "));
        Self {
            child: Some(child),
            port: main,
            webhook_port,
        }
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// Sends one HTTP/1.1 request.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.port, method, path, headers, body)
    }
}

/// Sends one HTTP/1.1 request to `127.0.0.1:port`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        stream.write_all(body).expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let body = body.to_owned();
        // Bodies may be chunked; the tests only need the text.
        let body = if text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(&body)
        } else {
            body
        };
        Response {
            status,
            headers,
            body,
        }
    }
}

impl Daemon {
    /// The status JSON.
    pub fn status(&self) -> serde_json::Value {
        let response = self.get("/status");
        assert_eq!(response.status, 200, "{response:?}");
        serde_json::from_str(&response.body).expect("status json")
    }

    /// The value of a metric series, e.g. `meridian_git_fetches_total{result="ok"}`.
    pub fn metric(&self, series: &str) -> f64 {
        self.get("/metrics")
            .body
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }

    /// Waits until `check(status)` holds, or panics after `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "timed out waiting for {what}; status: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal}");
    }

    /// Sends SIGTERM and waits for the exit code.
    pub fn terminate(&mut self) -> i32 {
        let mut child = self.child.take().expect("running");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "meridian run did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
