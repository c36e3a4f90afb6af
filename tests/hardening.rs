//! Hardened inputs: every refusal is a clear error that changes nothing.
//! Alias bombs, deep nesting and oversized files in desired state; links
//! and `--path` folders that leave the folder or the repository; oversized
//! Git blobs; oversized webhook bodies; the webhook replay cache across a
//! restart; and the bearer token that guards `/status` and `/metrics`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::daemon::Daemon;
use common::git::{Repo, example_files};
use common::{call_totals, copy_example, dial, meridian, sim_run};

const GA: &str = "desired-state/global-accelerator.yaml";
const APAC_DIAL: &str = "trafficDial: 50            # APAC still warming up";
const SECRET: &str = "correct horse battery staple";
const TOKEN: &str = "read-only-3f9a1c";
const WAIT: Duration = Duration::from_secs(30);

/// The example applied to a fresh simulated world, then edited so that a
/// plan would change something: a refusal that changed nothing is visible.
fn applied_with_pending_change() -> (tempfile::TempDir, PathBuf, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    copy_example(root);
    let sim = root.join("sim");
    let applied = sim_run(root, &sim, &["apply", "--yes"]);
    assert_eq!(applied.code, 0, "{}", applied.all());
    let ga = root.join(GA);
    let text = std::fs::read_to_string(&ga).expect("read");
    std::fs::write(&ga, text.replace(APAC_DIAL, "trafficDial: 30")).expect("write");
    let (_, writes) = call_totals(&sim);
    (dir, sim, writes)
}

/// `validate`, `plan` and `apply --yes` all exit 1 with `expected` in their
/// errors, and the simulated cloud saw no write.
fn refused_everywhere(root: &Path, sim: &Path, writes: u64, expected: &str) {
    let validate = meridian(root, &["validate"]);
    assert_eq!(validate.code, 1, "validate: {}", validate.all());
    assert!(
        validate.stderr.contains(expected),
        "validate: {}",
        validate.all()
    );
    for args in [&["plan"][..], &["apply", "--yes"][..]] {
        let run = sim_run(root, sim, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.all());
    }
    assert_eq!(call_totals(sim).1, writes, "nothing was written");
    assert_eq!(dial(sim, "api", 443, "ap-southeast-1"), 50);
}

#[test]
fn a_billion_laughs_document_is_refused_at_the_alias_that_crossed_the_limit_and_changes_nothing() {
    let (dir, sim, writes) = applied_with_pending_change();
    let root = dir.path();
    let mut text = String::from(
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec: {type: aws}\nx0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..9 {
        text.push_str(&format!(
            "x{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    std::fs::write(root.join("desired-state/bomb.yaml"), text).expect("write");
    // `*a3` stands for 11,111 values and the lines before expand to 12,330:
    // the eighth alias of line 9 (`x4: &a4 [...`, column 45) crosses 100,000.
    // validate, plan and apply each refuse it there; nothing is written.
    refused_everywhere(
        root,
        &sim,
        writes,
        "desired-state/bomb.yaml:9:45: aliases expand to more than 100000 values; refusing a document that multiplies itself",
    );
}

#[test]
fn a_document_nested_too_deep_is_refused_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {{name: p}}\nspec: {{type: aws, x: {}1{}}}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    std::fs::write(dir.path().join("deep.yaml"), text).expect("write");
    let run = meridian(dir.path(), &["validate", "."]);
    assert_eq!(run.code, 1, "{}", run.all());
    // The document's mapping, `spec` and 62 lists: the 63rd `[` (column
    // 22 + 62) would be the 65th level.
    assert!(
        run.stderr
            .contains("deep.yaml:4:84: documents may nest at most 64 levels"),
        "{}",
        run.all()
    );
}

#[test]
fn a_100_mb_document_is_refused_from_its_length_and_nothing_changes() {
    let (dir, sim, writes) = applied_with_pending_change();
    let root = dir.path();
    // Sparse: 100 MB long, no disk used, and never read.
    let big = std::fs::File::create(root.join("desired-state/huge.yaml")).expect("create");
    big.set_len(100_000_000).expect("set_len");
    refused_everywhere(
        root,
        &sim,
        writes,
        "desired-state/huge.yaml:1:1: files may be at most 4 MiB; this one is 95.4 MiB",
    );
}

/// The bytes of the YAML files in `folder` other than the `zz-pad-*` ones.
fn example_bytes(folder: &Path) -> u64 {
    std::fs::read_dir(folder)
        .expect("folder")
        .map(|e| e.expect("entry"))
        .filter(|e| !e.file_name().to_string_lossy().starts_with("zz-pad-"))
        .map(|e| e.metadata().expect("metadata").len())
        .sum()
}

#[test]
fn a_folder_holding_more_than_256_mib_of_yaml_is_refused_at_the_file_that_crosses_it() {
    let (dir, sim, writes) = applied_with_pending_change();
    let root = dir.path();
    // Sixty-four sparse files of exactly 4 MiB (each within its own limit)
    // after the example's files, in name order: the last one crosses.
    for n in 0..64 {
        let file = std::fs::File::create(root.join(format!("desired-state/zz-pad-{n:02}.yaml")))
            .expect("create");
        file.set_len(4 << 20).expect("set_len");
    }
    let before = 63 * (4 << 20) + example_bytes(&root.join("desired-state"));
    refused_everywhere(
        root,
        &sim,
        writes,
        &format!(
            "desired-state/zz-pad-63.yaml:1:1: a desired state may hold at most 256 MiB (268435456 bytes) of YAML, all files together; the 68 files before this one hold {before} bytes and it adds 4194304 bytes"
        ),
    );
}

#[test]
fn a_symlink_leaving_the_folder_is_refused_and_one_inside_is_read() {
    let (dir, sim, writes) = applied_with_pending_change();
    let root = dir.path();
    let outside = root.join("elsewhere");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(
        outside.join("extra.yaml"),
        "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: extra}\nspec: {type: aws}\n",
    )
    .expect("write");
    let link = root.join("desired-state/extra.yaml");
    std::os::unix::fs::symlink("../elsewhere/extra.yaml", &link).expect("symlink");
    refused_everywhere(
        root,
        &sim,
        writes,
        "desired-state/extra.yaml:1:1: symbolic link to ",
    );
    let validate = meridian(root, &["validate"]);
    assert!(
        validate.stderr.contains("outside the desired-state folder")
            && validate
                .stderr
                .contains("links must stay inside the folder"),
        "{}",
        validate.all()
    );

    // The same file inside the folder (hidden, so read once, through the link).
    std::fs::remove_file(&link).expect("unlink");
    let shared = root.join("desired-state/.shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::rename(outside.join("extra.yaml"), shared.join("extra.yaml")).expect("move");
    std::os::unix::fs::symlink(".shared/extra.yaml", &link).expect("symlink");
    let validate = meridian(root, &["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.all());
}

fn repo(root: &Path) -> Repo {
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    Repo::new(root, &files)
}

#[test]
fn a_path_with_dotdot_is_refused_by_diff_and_run_before_anything_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let repo = repo(root);
    let work = repo.work.to_str().expect("utf-8");
    for path in ["../x", "desired-state/../../b"] {
        let state = root.join("diff-state");
        let diff = meridian(
            root,
            &[
                "diff",
                "--repo",
                work,
                "--base",
                "HEAD",
                "--head",
                "HEAD",
                "--path",
                path,
                "--state-dir",
                state.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(diff.code, 1, "{}", diff.all());
        assert!(
            diff.stderr.contains(&format!(
                "the desired-state folder `{path}` holds a `..` component"
            )),
            "{}",
            diff.all()
        );
        let state = root.join("run-state");
        let run = meridian(
            root,
            &[
                "run",
                "--repo",
                work,
                "--path",
                path,
                "--listen",
                "127.0.0.1:0",
                "--state-dir",
                state.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stderr.contains("holds a `..` component"),
            "{}",
            run.all()
        );
        assert!(!run.stdout.contains("listening"), "{}", run.all());
        assert!(!state.exists(), "nothing was created before the refusal");
    }
}

#[test]
fn a_tree_entry_named_dotdot_is_refused_though_git_never_writes_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let repo = repo(root);
    let base = repo.git(&["rev-parse", "HEAD"]);
    // Objects written by hand, as only a crafted repository holds them:
    // `desired-state/../x.yaml`.
    let blob = repo.git(&["hash-object", "-w", GA]);
    let literal_tree = |name: &str, mode: &str, oid: &str| {
        let file = root.join("tree.bin");
        let mut bytes = format!("{mode} {name}\0").into_bytes();
        bytes.extend(
            (0..oid.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&oid[i..i + 2], 16).expect("hex")),
        );
        std::fs::write(&file, bytes).expect("write");
        repo.git(&[
            "hash-object",
            "-t",
            "tree",
            "--literally",
            "-w",
            file.to_str().expect("utf-8"),
        ])
    };
    let inner = literal_tree("x.yaml", "100644", &blob);
    let dotdot = literal_tree("..", "40000", &inner);
    let top = literal_tree("desired-state", "40000", &dotdot);
    let head = repo.git(&["commit-tree", &top, "-p", &base, "-m", "crafted"]);
    let diff = meridian(
        root,
        &[
            "diff",
            "--repo",
            repo.work.to_str().expect("utf-8"),
            "--base",
            &base,
            "--head",
            &head,
            "--state-dir",
            root.join("diff-state").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(diff.code, 1, "{}", diff.all());
    assert!(
        diff.stdout.contains(&format!(
            "desired-state at revision {head}: a tree entry named `..`, which Git never writes"
        )),
        "{}",
        diff.all()
    );
}

fn sim(root: &Path) -> PathBuf {
    let sim = root.join("sim");
    let run = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "50"]);
    assert_eq!(run.code, 0, "{}", run.all());
    sim
}

fn start(root: &Path, repo: &Repo, sim: &Path, interval: &str, extra: &[&str]) -> Daemon {
    let state = root.join("state");
    let url = repo.url();
    let mut args = vec![
        "--repo",
        url.as_str(),
        "--interval",
        interval,
        "--state-dir",
        state.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    Daemon::start(sim, &args, Some(SECRET))
}

/// Waits until `/readyz` answers 200: a reconcile of this process finished.
fn ready(daemon: &Daemon) {
    let started = std::time::Instant::now();
    while daemon.get("/readyz").status != 200 {
        assert!(started.elapsed() < WAIT, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn applied(status: &serde_json::Value) -> Option<&str> {
    status["last_applied"]["revision"].as_str()
}

fn push_event() -> Vec<u8> {
    br#"{"ref":"refs/heads/main"}"#.to_vec()
}

fn signed(daemon: &Daemon, body: &[u8], delivery: &str) -> common::daemon::Response {
    signed_to(daemon.port, body, delivery)
}

/// A signed push delivery to the webhook receiver on `port`.
fn signed_to(port: u16, body: &[u8], delivery: &str) -> common::daemon::Response {
    let signature = meridian::daemon::webhook::Secret::new(SECRET.as_bytes())
        .expect("secret")
        .sign(body);
    common::daemon::request(
        port,
        "POST",
        "/webhook/github",
        &[
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", delivery),
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ],
        body,
    )
}

/// A daemon applies the repository's first revision; `change` then
/// commits a revision that must be invalid with `message` (given the
/// revision): it is recorded as failed, nothing is written, the first
/// revision stays live, and `diff` refuses it with `diff_says`.
fn an_invalid_revision_changes_nothing(
    change: impl FnOnce(&mut Repo) -> String,
    message: impl FnOnce(&Repo, &str) -> String,
    diff_says: &str,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let first = repo.git(&["rev-parse", "HEAD"]);
    let daemon = start(root, &repo, &sim, "300ms", &[]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });
    let (_, writes) = call_totals(&sim);
    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 30"));
    let bad = change(&mut repo);
    repo.push(false);
    let status = daemon.wait_for(WAIT, "the invalid revision to be attempted", |s| {
        s["last_attempted"]["revision"] == bad.as_str()
    });
    assert_eq!(status["last_attempted"]["outcome"], "invalid", "{status:#}");
    assert_eq!(applied(&status), Some(first.as_str()), "{status:#}");
    assert!(
        status["failed_revisions"]
            .as_array()
            .expect("failed")
            .iter()
            .any(|r| r == bad.as_str()),
        "{status:#}"
    );
    assert_eq!(
        status["last_error"]["message"],
        message(&repo, &bad),
        "{status:#}"
    );
    assert_eq!(dial(&sim, "api", 443, "ap-southeast-1"), 50);
    assert_eq!(call_totals(&sim).1, writes, "nothing written");

    // The pull-request preview refuses it the same way.
    let work = repo.work.to_str().expect("utf-8").to_owned();
    let diff_state = root.join("diff-state");
    let preview = |base: &str, head: &str| {
        sim_run(
            root,
            &sim,
            &[
                "diff",
                "--repo",
                &work,
                "--base",
                base,
                "--head",
                head,
                "--state-dir",
                diff_state.to_str().expect("utf-8"),
            ],
        )
    };
    let diff = preview(&first, &bad);
    assert_eq!(diff.code, 1, "{}", diff.all());
    assert!(diff.stdout.contains(diff_says), "{}", diff.all());

    // The pull request that repairs it previews, against an empty base.
    let repair = preview(&bad, &first);
    assert!(matches!(repair.code, 0 | 2), "{}", repair.all());
    assert!(
        repair.stdout.contains("the base revision cannot be read")
            && repair.stdout.contains(diff_says),
        "{}",
        repair.all()
    );
}

#[test]
fn a_committed_link_out_of_the_repository_makes_the_revision_invalid_and_changes_nothing() {
    an_invalid_revision_changes_nothing(
        |repo| {
            std::os::unix::fs::symlink(
                "../../../etc/passwd",
                repo.work.join("desired-state/passwd.yaml"),
            )
            .expect("symlink");
            repo.commit("a dial change and a link out of the repository")
        },
        |_, revision| {
            format!(
                "desired-state/passwd.yaml at revision {revision}: a symbolic link to `../../../etc/passwd`, outside the repository; links are never followed, and one leaving the repository is refused: commit the file itself"
            )
        },
        "outside the repository",
    );
}

#[test]
fn an_oversized_git_blob_makes_the_revision_invalid_and_the_last_good_one_stays() {
    an_invalid_revision_changes_nothing(
        |repo| {
            repo.write(
                "desired-state/generated.yaml",
                &"# padding\n".repeat(500_000),
            );
            repo.commit("a dial change and a 5 MB generated file")
        },
        |_, revision| {
            format!(
                "desired-state/generated.yaml at revision {revision}: files may be at most 4 MiB; this one is 4.8 MiB: split it into several files"
            )
        },
        "files may be at most 4 MiB",
    );
}

#[test]
fn a_revision_holding_more_than_256_mib_of_yaml_is_invalid_and_the_last_good_one_stays() {
    an_invalid_revision_changes_nothing(
        |repo| {
            // One blob of exactly 4 MiB, named 64 times: the repository
            // stays small, the revision holds 256 MiB of YAML after the
            // example's files.
            let padding = format!("{}\n", "#".repeat((4 << 20) - 1));
            for n in 0..64 {
                repo.write(&format!("desired-state/zz-pad-{n:02}.yaml"), &padding);
            }
            repo.commit("a dial change and 256 MiB of generated files")
        },
        |repo, revision| {
            let before = 63 * (4 << 20) + example_bytes(&repo.work.join("desired-state"));
            format!(
                "desired-state/zz-pad-63.yaml at revision {revision}: a desired state may hold at most 256 MiB (268435456 bytes) of YAML, all files together; the 68 files before this one hold {before} bytes and it adds 4194304 bytes: split the fleet across repositories or folders"
            )
        },
        "a desired state may hold at most 256 MiB (268435456 bytes) of YAML",
    );
}

/// Sends a webhook whose body is `length` bytes in `Transfer-Encoding:
/// chunked` (no `Content-Length`), writing while it reads the answer, and
/// returns the status line and the rest of the answer.
fn chunked_post(port: u16, length: usize) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        let head = "POST /webhook/github HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=00\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        // The server may answer and close before the body ends: errors
        // writing are expected, the answer is what counts.
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0;
        while sent < length {
            let n = chunk.len().min(length - sent);
            let framed = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
            if writer.write_all(&framed).is_err() {
                return;
            }
            sent += n;
        }
        let _ = writer.write_all(b"0\r\n\r\n");
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
    }
    let _ = sending.join();
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn an_oversized_webhook_body_gets_413_is_counted_and_triggers_no_fetch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let repo = repo(root);
    let sim = sim(root);
    let first = repo.git(&["rev-parse", "HEAD"]);
    // Polling once an hour: any fetch after startup comes from a webhook.
    let daemon = start(root, &repo, &sim, "1h", &[]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });
    let fetches = daemon.metric("meridian_git_fetches_total{result=\"ok\"}");

    // Declared too large: refused from the header, the body is never sent
    // (the client waits for `100 Continue`, which never comes).
    let declared = {
        let mut stream = TcpStream::connect(("127.0.0.1", daemon.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let signature = meridian::daemon::webhook::Secret::new(SECRET.as_bytes())
            .expect("secret")
            .sign(b"");
        write!(
            stream,
            "POST /webhook/github HTTP/1.1\r\nHost: 127.0.0.1\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: big-1\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            25_000_000
        )
        .expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    assert!(
        declared.contains("webhook bodies may be at most 1048576 bytes (1 MiB)"),
        "{declared}"
    );

    // Too large without saying so: refused once reading passes the limit.
    let streamed = chunked_post(daemon.port, 3 << 20);
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    assert!(
        streamed.contains("webhook bodies may be at most"),
        "{streamed}"
    );

    // Just under the limit is read and verified as usual.
    let mut padded = br#"{"ref":"refs/heads/main","padding":""#.to_vec();
    padded.resize((1 << 20) - 2, b'x');
    padded.extend_from_slice(br#""}"#);
    assert_eq!(padded.len(), 1 << 20);
    let fits = signed(&daemon, &padded, "fits-1");
    assert_eq!(fits.status, 202, "{fits:?}");

    daemon.wait_for(WAIT, "the accepted delivery's fetch", |_| {
        daemon.metric("meridian_git_fetches_total{result=\"ok\"}") > fetches
    });
    assert_eq!(
        daemon.metric("meridian_git_fetches_total{result=\"ok\"}"),
        fetches + 1.0,
        "only the delivery within the limit caused a fetch"
    );
    assert_eq!(
        daemon.metric("meridian_webhook_requests_total{result=\"too_large\"}"),
        2.0
    );
    assert_eq!(
        daemon.metric("meridian_webhook_requests_total{result=\"accepted\"}"),
        1.0
    );
}

#[test]
fn a_delivery_seen_before_a_restart_is_a_duplicate_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let repo = repo(root);
    let sim = sim(root);
    let first = repo.git(&["rev-parse", "HEAD"]);
    let mut daemon = start(root, &repo, &sim, "1h", &[]);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });
    let accepted = signed(&daemon, &push_event(), "before-restart");
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert!(
        root.join("state/webhook-deliveries.json").exists(),
        "the replay cache is in the state directory"
    );
    assert_eq!(daemon.terminate(), 0);

    let daemon = start(root, &repo, &sim, "1h", &[]);
    ready(&daemon);
    let fetches = daemon.metric("meridian_git_fetches_total{result=\"ok\"}");
    let replay = signed(&daemon, &push_event(), "before-restart");
    assert_eq!(replay.status, 200, "{replay:?}");
    assert!(replay.body.contains("duplicate"), "{replay:?}");
    assert_eq!(
        daemon.metric("meridian_webhook_requests_total{result=\"duplicate\"}"),
        1.0
    );
    let fresh = signed(&daemon, &push_event(), "after-restart");
    assert_eq!(fresh.status, 202, "{fresh:?}");
    daemon.wait_for(WAIT, "the new delivery's fetch", |_| {
        daemon.metric("meridian_git_fetches_total{result=\"ok\"}") > fetches
    });
    assert_eq!(
        daemon.metric("meridian_git_fetches_total{result=\"ok\"}"),
        fetches + 1.0,
        "the replay caused no fetch, the new delivery one"
    );
}

#[test]
fn webhooks_on_their_own_address_serve_nothing_else_and_status_stays_on_listen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut repo = repo(root);
    let sim = sim(root);
    let first = repo.git(&["rev-parse", "HEAD"]);
    let daemon = start(
        root,
        &repo,
        &sim,
        "1h",
        &["--webhook-listen", "127.0.0.1:0"],
    );
    let webhooks = daemon.webhook_port.expect("a webhook address");
    assert_ne!(webhooks, daemon.port);
    daemon.wait_for(WAIT, "the initial revision", |s| {
        applied(s) == Some(first.as_str())
    });

    // The webhook address answers webhooks and the probes, nothing else.
    let get = |port: u16, path: &str| common::daemon::request(port, "GET", path, &[], b"").status;
    for path in ["/status", "/metrics"] {
        assert_eq!(get(webhooks, path), 404, "{path} on the webhook address");
    }
    assert_eq!(get(webhooks, "/healthz"), 200);
    assert_eq!(
        get(webhooks, "/readyz"),
        200,
        "ready after the first reconcile"
    );
    assert_eq!(get(daemon.port, "/readyz"), 200);
    // And --listen no longer takes webhooks.
    assert_eq!(signed(&daemon, &push_event(), "on-listen").status, 404);
    assert_eq!(get(daemon.port, "/status"), 200);
    assert_eq!(get(daemon.port, "/healthz"), 200);

    // A push announced on the webhook address is fetched and applied.
    let fetches = daemon.metric("meridian_git_fetches_total{result=\"ok\"}");
    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 30"));
    let next = repo.commit("a dial change");
    repo.push(false);
    let accepted = signed_to(webhooks, &push_event(), "on-webhooks");
    assert_eq!(accepted.status, 202, "{accepted:?}");
    daemon.wait_for(WAIT, "the pushed revision", |s| {
        applied(s) == Some(next.as_str())
    });
    assert!(daemon.metric("meridian_git_fetches_total{result=\"ok\"}") > fetches);
    assert_eq!(dial(&sim, "api", 443, "ap-southeast-1"), 30);
}

#[test]
fn a_webhook_address_without_a_secret_or_on_the_listen_address_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let repo = repo(root);
    let remote = repo.url();
    let state = root.join("state");
    let state = state.to_str().expect("utf-8");
    let base = ["run", "--repo", &remote, "--state-dir", state];
    let run = meridian(
        root,
        &[&base[..], &["--webhook-listen", "127.0.0.1:0"]].concat(),
    );
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("webhooks are refused without a secret: give --webhook-secret-env or --webhook-secret-file"),
        "{}",
        run.all()
    );
    let secret = root.join("secret");
    std::fs::write(&secret, SECRET).expect("write");
    // The same address, or the same port under a wildcard address.
    for (listen, webhooks) in [
        ("127.0.0.1:39091", "127.0.0.1:39091"),
        ("0.0.0.0:39091", "127.0.0.1:39091"),
        ("127.0.0.1:39091", "[::]:39091"),
    ] {
        let run = meridian(
            root,
            &[
                &base[..],
                &[
                    "--webhook-secret-file",
                    secret.to_str().expect("utf-8"),
                    "--listen",
                    listen,
                    "--webhook-listen",
                    webhooks,
                ],
            ]
            .concat(),
        );
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stderr.contains(&format!(
                "--webhook-listen {webhooks} and --listen {listen} share port 39091"
            )),
            "{}",
            run.all()
        );
    }
    assert!(!root.join("state").exists(), "nothing started");
}

/// `/status` and `/metrics` refuse a request without the token, or with
/// another, and serve one with it; the probes need none; the token is not
/// in the log.
fn guarded(daemon: &Daemon, log: &Path) {
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/status", "/metrics"] {
        let anonymous = daemon.get(path);
        assert_eq!(anonymous.status, 401, "{path}: {anonymous:?}");
        assert_eq!(
            anonymous.header("www-authenticate"),
            Some("Bearer realm=\"meridian\""),
            "{path}: {anonymous:?}"
        );
        assert!(
            anonymous.body.contains("Authorization: Bearer"),
            "{anonymous:?}"
        );
        assert!(!anonymous.body.contains(TOKEN));
        let wrong = daemon.request(
            "GET",
            path,
            &[("Authorization", "Bearer not-the-token")],
            b"",
        );
        assert_eq!(wrong.status, 401, "{path}: {wrong:?}");
        assert_eq!(
            wrong.header("www-authenticate"),
            Some("Bearer realm=\"meridian\", error=\"invalid_token\""),
            "{path}: {wrong:?}"
        );
        let right = daemon.request("GET", path, &[("Authorization", &bearer)], b"");
        assert_eq!(right.status, 200, "{path}: {right:?}");
    }
    let metrics = daemon.request("GET", "/metrics", &[("Authorization", &bearer)], b"");
    assert!(
        metrics.body.contains("meridian_reconciles_total"),
        "{metrics:?}"
    );
    assert_eq!(daemon.get("/healthz").status, 200);
    ready(daemon);
    // Webhooks keep their own authentication: a signed delivery needs no token.
    assert_eq!(signed(daemon, &push_event(), "token-test").status, 202);
    let logged = std::fs::read_to_string(log).expect("log");
    assert!(!logged.contains(TOKEN), "the token is never logged");
}

#[test]
fn status_and_metrics_require_the_bearer_token_from_env_or_file_and_probes_stay_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let repo = repo(root);
    let sim = sim(root);
    let remote = repo.url();

    let log = root.join("env.log");
    let state = root.join("state-env");
    let daemon = Daemon::start_with_env(
        &sim,
        &[
            "--repo",
            &remote,
            "--interval",
            "1h",
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--status-token-env",
            "STATUS_TOKEN",
        ],
        Some(SECRET),
        &[("STATUS_TOKEN", TOKEN)],
        &log,
    );
    guarded(&daemon, &log);
    drop(daemon);

    let file = root.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).expect("write");
    let log = root.join("file.log");
    let state = root.join("state-file");
    let daemon = Daemon::start_logged(
        &sim,
        &[
            "--repo",
            &remote,
            "--interval",
            "1h",
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--status-token-file",
            file.to_str().expect("utf-8"),
        ],
        Some(SECRET),
        &log,
    );
    guarded(&daemon, &log);
    drop(daemon);

    // Without the flags, reads stay open, as before.
    let open = start(root, &repo, &sim, "1h", &[]);
    assert_eq!(open.get("/metrics").status, 200);

    // A token that cannot work is refused at start.
    std::fs::write(&file, "\n").expect("write");
    let empty = meridian(
        root,
        &[
            "run",
            "--repo",
            &remote,
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            root.join("state-empty").to_str().expect("utf-8"),
            "--status-token-file",
            file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(empty.code, 1, "{}", empty.all());
    assert!(
        empty.stderr.contains(&format!(
            "the status token file {}: is empty",
            file.display()
        )),
        "{}",
        empty.all()
    );
}
