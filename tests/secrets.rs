//! Secrets never leak: a whole session — validate, plans in every format,
//! apply, drift, audit, a plan against the real clouds that fails, and the
//! daemon with webhooks, a bearer token, an invalid revision and drift,
//! fetching over HTTP from a Git server that requires the token (and a
//! preview with a token it rejects) — runs with a webhook secret, a status token, a Git token, AWS keys and a
//! Google service-account key in its environment. None of them appears in
//! any output, log, plan, status, audit line or file meridian wrote.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::daemon::Daemon;
use common::git::{Repo, example_files};

const WEBHOOK_SECRET: &str = "whsec-meridian-leak-check-7f3a9c";
const STATUS_TOKEN: &str = "tok-meridian-leak-check-51b2e8";
const GIT_TOKEN: &str = "ghp_meridianleakcheck0123456789abcd";
const AWS_ACCESS_KEY_ID: &str = "AKIAMERIDIANLEAK7Q2X";
const AWS_SECRET_ACCESS_KEY: &str = "meridianLeakCheckSecret/9f8e7d6c5b4a3210ZYXW";
const AWS_SESSION_TOKEN: &str = "meridianLeakCheckSessionToken0123456789";
const GCP_PRIVATE_KEY_MARK: &str = "MERIDIANLEAKCHECKPRIVATEKEYMATERIAL";
/// A token the Git server rejects, for the error path.
const WRONG_GIT_TOKEN: &str = "ghp_meridianrejectedtoken9876543210zyx";

fn secrets() -> [&'static str; 8] {
    [
        WEBHOOK_SECRET,
        STATUS_TOKEN,
        GIT_TOKEN,
        WRONG_GIT_TOKEN,
        AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY,
        AWS_SESSION_TOKEN,
        GCP_PRIVATE_KEY_MARK,
    ]
}

fn environment(root: &Path) -> Vec<(String, String)> {
    let key_file = root.join("secrets").join("service-account.json");
    std::fs::create_dir_all(key_file.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &key_file,
        serde_json::json!({
            "type": "service_account",
            "project_id": "meridian-leak-check",
            "private_key_id": "0123456789abcdef",
            "private_key": format!("-----BEGIN PRIVATE KEY-----\n{GCP_PRIVATE_KEY_MARK}\n-----END PRIVATE KEY-----\n"),
            "client_email": "leak-check@meridian-leak-check.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "http://127.0.0.1:9/token",
        })
        .to_string(),
    )
    .expect("key file");
    vec![
        ("WEBHOOK_SECRET".to_owned(), WEBHOOK_SECRET.to_owned()),
        ("STATUS_TOKEN".to_owned(), STATUS_TOKEN.to_owned()),
        ("GIT_TOKEN".to_owned(), GIT_TOKEN.to_owned()),
        ("WRONG_GIT_TOKEN".to_owned(), WRONG_GIT_TOKEN.to_owned()),
        ("AWS_ACCESS_KEY_ID".to_owned(), AWS_ACCESS_KEY_ID.to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            AWS_SECRET_ACCESS_KEY.to_owned(),
        ),
        ("AWS_SESSION_TOKEN".to_owned(), AWS_SESSION_TOKEN.to_owned()),
        (
            "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
            key_file.display().to_string(),
        ),
        // Debug everywhere, and trace asked for the SDK's orchestrator
        // and inside reconciles: the credential-bearing crates stay capped.
        (
            "MERIDIAN_LOG".to_owned(),
            "debug,aws_smithy_runtime::client::orchestrator=trace,[reconcile]=trace".to_owned(),
        ),
    ]
}

/// Runs meridian with the secrets in its environment; stdout and stderr.
fn run(root: &Path, env: &[(String, String)], args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(args)
        .current_dir(root)
        .env_remove("MERIDIAN_SIM")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("meridian runs");
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Git's smart-HTTP server (`git http-backend`) for the bare
/// repositories under `root`, requiring `token` as a Basic password, as a
/// Git host takes a personal access token; its port and request log.
struct GitHttp {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl GitHttp {
    fn start(root: &Path, token: &str) -> Self {
        use std::io::BufRead as _;
        let token_file = root.join("secrets").join("git-token");
        std::fs::create_dir_all(token_file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&token_file, token).expect("token file");
        let log = root.join("git-http.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/git_http.py");
        let mut child = Command::new(common::aws::python())
            .arg(script)
            .arg(root)
            .arg(&token_file)
            .arg(&log)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the Git HTTP server starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("its port");
        let port = line.trim().parse().expect("a port");
        Self { child, port, log }
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

#[test]
fn no_secret_appears_in_any_output_log_plan_audit_line_or_file_of_a_full_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let env = environment(root);
    let sim = root.join("sim");
    let sim_arg = sim.to_str().expect("utf-8").to_owned();
    let desired = common::copy_example(&root.join("desired-state"));
    let desired_arg = desired.to_str().expect("utf-8").to_owned();
    let plan_file = root.join("out").join("plan.json");
    std::fs::create_dir_all(plan_file.parent().expect("parent")).expect("mkdir");
    let plan_arg = plan_file.to_str().expect("utf-8").to_owned();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, (code, text): (i32, String), expect: &[i32]| {
        assert!(expect.contains(&code), "{what}: exit {code}\n{text}");
        outputs.push((what.to_owned(), text));
    };

    // The commands, against the simulated cloud.
    let sim_args = |rest: &[&str]| -> Vec<String> {
        let mut all = vec!["--sim".to_owned(), sim_arg.clone(), "-vv".to_owned()];
        all.extend(rest.iter().map(|s| (*s).to_owned()));
        all
    };
    let call = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(root, &env, &args)
    };
    record(
        "validate",
        call(vec!["validate".into(), desired_arg.clone()]),
        &[0],
    );
    for format in ["text", "json", "markdown"] {
        record(
            &format!("plan {format}"),
            call(sim_args(&["plan", &desired_arg, "--format", format])),
            &[0],
        );
    }
    record(
        "plan --out",
        call(sim_args(&["plan", &desired_arg, "--out", &plan_arg])),
        &[0],
    );
    record(
        "apply",
        call(sim_args(&[
            "apply",
            &desired_arg,
            "--plan",
            &plan_arg,
            "--yes",
        ])),
        &[0],
    );
    record(
        "sim set-dial",
        call(sim_args(&[
            "sim",
            "set-dial",
            "api",
            "eu-central-1",
            "30",
            "--listener",
            "https",
        ])),
        &[0],
    );
    record("drift", call(sim_args(&["drift", &desired_arg])), &[2]);
    record("audit", call(vec!["audit".into()]), &[0]);
    record(
        "audit json",
        call(vec!["audit".into(), "--format".into(), "json".into()]),
        &[0],
    );
    // Against the real clouds, with the keys in the environment: the calls
    // fail (no network here), and the errors name no credential.
    record(
        "plan without the simulator",
        call(vec!["-vv".into(), "plan".into(), desired_arg.clone()]),
        &[0, 1, 2],
    );

    // The daemon: webhook secret, status token and Git token.
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let mut repo = Repo::new(root, &files);
    let state = root.join("state");
    let log = root.join("daemon.log");
    let daemon_env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k != "WEBHOOK_SECRET")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Over HTTP, from a server that takes only the Git token: the token is
    // really sent, and a fetch without it fails.
    let git_http = GitHttp::start(root, GIT_TOKEN);
    let url = format!("http://127.0.0.1:{}/remote.git", git_http.port);
    let mut daemon = Daemon::start_with_env(
        &sim,
        &[
            "--repo",
            &url,
            "--interval",
            "1s",
            "--drift-interval",
            "2s",
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--status-token-env",
            "STATUS_TOKEN",
            "--git-token-env",
            "GIT_TOKEN",
        ],
        Some(WEBHOOK_SECRET),
        &daemon_env,
        &log,
    );
    let bearer = format!("Bearer {STATUS_TOKEN}");
    let status = || {
        let response = daemon.request("GET", "/status", &[("Authorization", &bearer)], b"");
        assert_eq!(response.status, 200, "{}", response.body);
        serde_json::from_str::<serde_json::Value>(&response.body).expect("status json")
    };
    let wait = |what: &str, check: &dyn Fn(&serde_json::Value) -> bool| {
        let started = std::time::Instant::now();
        loop {
            let s = status();
            if check(&s) {
                return s;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "{what}: {s:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let head = repo.git(&["rev-parse", "HEAD"]);
    wait("the first revision", &|s| {
        s["last_applied"]["revision"].as_str() == Some(head.as_str())
    });
    let requests = git_http.requests();
    assert!(
        requests.contains("GET /remote.git/info/refs 401")
            && requests.contains("POST /remote.git/git-upload-pack 200"),
        "the server asked for the token and served the fetch with it: {requests}"
    );
    // A token the server rejects: the preview fails, naming no token.
    let (code, text) = run(
        root,
        &env,
        &[
            "-vv",
            "diff",
            "--repo",
            &url,
            "--base",
            &head,
            "--head",
            &head,
            "--state-dir",
            root.join("diff-state").to_str().expect("utf-8"),
            "--git-token-env",
            "WRONG_GIT_TOKEN",
        ],
    );
    assert!(text.contains("authentication failed"), "{text}");
    record("diff with a rejected token", (code, text), &[1]);
    let mut responses = Vec::new();
    for (method, path, headers, body) in [
        ("GET", "/status", vec![], &b""[..]),
        (
            "GET",
            "/status",
            vec![("Authorization", "Bearer wrong")],
            &b""[..],
        ),
        (
            "GET",
            "/metrics",
            vec![("Authorization", bearer.as_str())],
            &b""[..],
        ),
        ("GET", "/metrics", vec![], &b""[..]),
        (
            "POST",
            "/webhook/generic",
            vec![("X-Meridian-Signature-256", "sha256=00")],
            &br#"{"ref":"refs/heads/main"}"#[..],
        ),
    ] {
        let response = daemon.request(method, path, &headers, body);
        responses.push(format!(
            "{method} {path} {}: {}",
            response.status, response.body
        ));
    }
    let body = br#"{"ref":"refs/heads/main"}"#;
    let signature = meridian::daemon::webhook::Secret::new(WEBHOOK_SECRET.as_bytes())
        .expect("secret")
        .sign(body);
    let response = daemon.request(
        "POST",
        "/webhook/generic",
        &[
            ("X-Meridian-Signature-256", signature.as_str()),
            ("X-Meridian-Delivery", "delivery-1"),
        ],
        body,
    );
    assert_eq!(response.status, 202, "{}", response.body);
    responses.push(response.body);
    // An invalid revision: its error is in /status and the log.
    repo.write(
        "desired-state/broken.yaml",
        "kind: GlobalAccelerator\nspec: [\n",
    );
    let broken = repo.commit("broken");
    repo.push(false);
    let invalid = wait("the invalid revision", &|s| {
        s["last_attempted"]["revision"].as_str() == Some(broken.as_str())
    });
    assert_eq!(
        invalid["last_attempted"]["outcome"], "invalid",
        "{invalid:#}"
    );
    responses.push(invalid.to_string());
    // Drift, corrected against the last good revision.
    common::set_https_dial(&sim, "api", "eu-central-1", 40);
    let started = std::time::Instant::now();
    while common::dial(&sim, "api", 443, "eu-central-1") != 100 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "drift not corrected"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.terminate();
    record(
        "daemon audit",
        call(vec![
            "audit".into(),
            "--state-dir".into(),
            state.to_str().expect("utf-8").into(),
        ]),
        &[0],
    );
    outputs.push(("HTTP responses".to_owned(), responses.join("\n")));

    // Every file meridian wrote, every output, every log.
    let mut written = Vec::new();
    for folder in [
        root.join(".meridian-state"),
        state.clone(),
        sim.clone(),
        root.join("out"),
    ] {
        files_under(&folder, &mut written);
    }
    files_under(&root.join("diff-state"), &mut written);
    written.push(log.clone());
    written.push(sim.with_extension("daemon.log"));
    written.push(git_http.log.clone());
    assert!(
        written.iter().any(|f| f.ends_with("audit.jsonl")),
        "the audit trails are among the files read: {written:?}"
    );
    for file in &written {
        if let Ok(bytes) = std::fs::read(file) {
            outputs.push((
                file.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    let daemon_log = std::fs::read_to_string(&log).expect("daemon log");
    assert!(
        daemon_log.contains("revision"),
        "the log is the daemon's: {daemon_log}"
    );
    let mut leaks = Vec::new();
    for (what, text) in &outputs {
        for secret in secrets() {
            if text.contains(secret) {
                leaks.push(format!("{secret} in {what}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
}
