//! Several `meridian run` replicas on one etcd (`--election`): exactly one
//! of them writes, a replica paused past its lease never writes after it
//! resumes, and status and metrics say who leads in which term. A real
//! etcd (Debian's `etcd-server`) runs on loopback.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::git::{Repo, example_files};
use common::{call_totals, sim_run};

const GA: &str = "desired-state/global-accelerator.yaml";
const APAC_DIAL: &str = "trafficDial: 50            # APAC still warming up";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// An etcd server on loopback, killed on drop.
struct Etcd {
    child: Child,
    url: String,
}

impl Etcd {
    fn start(dir: &Path) -> Self {
        let (client, peer) = (free_port(), free_port());
        let binary = std::env::var("MERIDIAN_TEST_ETCD").unwrap_or_else(|_| "etcd".to_owned());
        let child = Command::new(&binary)
            .args([
                "--data-dir",
                dir.join("etcd").to_str().expect("utf-8"),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("`{binary}` starts (apt-get install etcd-server): {e}"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", client)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "etcd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("etcd://127.0.0.1:{client}/ha-test"),
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(root: &Path, repo: &Repo, sim: &Path, etcd: &Etcd, name: &str) -> Daemon {
    let state: PathBuf = root.join(format!("state-{name}"));
    Daemon::start_logged(
        sim,
        &[
            "--repo",
            &repo.url(),
            "--interval",
            "300ms",
            "--drift-interval",
            "1h",
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--election",
            &etcd.url,
            "--identity",
            name,
            "--lease-duration",
            "3s",
            "--renew-deadline",
            "2s",
            "--retry-period",
            "300ms",
        ],
        None,
        &root.join(format!("{name}.log")),
    )
}

fn setup(root: &Path) -> (Repo, PathBuf) {
    let files = example_files("desired-state");
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let repo = Repo::new(root, &files);
    let sim = root.join("sim");
    let run = sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "20"]);
    assert_eq!(run.code, 0, "{}", run.all());
    (repo, sim)
}

/// The writes the plan of the repository's desired state takes against
/// the world as it is now.
fn planned_writes(root: &Path, repo: &Repo, sim: &Path) -> u64 {
    let plan = sim_run(
        root,
        sim,
        &[
            "plan",
            repo.work.join("desired-state").to_str().expect("utf-8"),
            "--format",
            "json",
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).expect("plan json");
    plan["writes"]
        .as_array()
        .expect("writes")
        .iter()
        .map(|w| w["count"].as_u64().unwrap_or(0))
        .sum()
}

fn role(daemon: &Daemon) -> String {
    daemon.status()["election"]["role"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn wait(what: &str, timeout: Duration, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_replicas_apply_a_commit_exactly_once_and_say_who_leads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let etcd = Etcd::start(root);
    let (mut repo, sim) = setup(root);
    let expected = planned_writes(root, &repo, &sim);
    assert!(
        expected > 20,
        "the example takes writes to create: {expected}"
    );
    let a = replica(root, &repo, &sim, &etcd, "replica-a");
    let b = replica(root, &repo, &sim, &etcd, "replica-b");
    let head = repo.git(&["rev-parse", "HEAD"]);
    wait(
        "one replica applies the first commit",
        Duration::from_secs(60),
        || {
            [&a, &b]
                .iter()
                .any(|d| d.status()["last_applied"]["revision"] == head.as_str())
        },
    );
    assert_eq!(call_totals(&sim).1, expected, "every write once");

    // Exactly one leader; both know it and its term.
    let (sa, sb) = (a.status(), b.status());
    let roles = [role(&a), role(&b)];
    assert!(
        roles.contains(&"leader".to_owned()) && roles.contains(&"follower".to_owned()),
        "{roles:?}"
    );
    assert_eq!(
        sa["election"]["leader"], sb["election"]["leader"],
        "{sa:#} {sb:#}"
    );
    assert_eq!(sa["election"]["term"], sb["election"]["term"]);
    assert!(sa["election"]["term"].as_i64().unwrap_or(0) > 0);
    let leader = if roles[0] == "leader" { &a } else { &b };
    let follower = if roles[0] == "leader" { &b } else { &a };
    let metrics = leader.get("/metrics").body;
    assert!(
        metrics.contains("meridian_leader{role=\"leader\",leader=\"") && metrics.contains("\"} 1"),
        "{metrics}"
    );
    assert!(
        follower
            .get("/metrics")
            .body
            .contains("meridian_leader{role=\"follower\"")
    );
    assert_eq!(
        follower.get("/readyz").status,
        200,
        "followers are ready too"
    );

    // A pushed commit: applied once, by the leader.
    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 75"));
    repo.commit("APAC to 75");
    repo.push(false);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let before = call_totals(&sim).1;
    wait(
        "the leader applies the new commit",
        Duration::from_secs(60),
        || leader.status()["last_applied"]["revision"] == head.as_str(),
    );
    std::thread::sleep(Duration::from_secs(1));
    let writes = call_totals(&sim).1 - before;
    assert_eq!(writes, 1, "one UpdateEndpointGroup, once");
    assert!(
        follower.status()["last_applied"]["revision"] != head.as_str(),
        "the follower wrote nothing"
    );
}

#[test]
fn a_leader_paused_past_its_lease_never_writes_after_it_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let etcd = Etcd::start(root);
    let (mut repo, sim) = setup(root);
    let first = replica(root, &repo, &sim, &etcd, "first");
    let head = repo.git(&["rev-parse", "HEAD"]);
    first.wait_for(Duration::from_secs(60), "the first commit applied", |s| {
        s["last_applied"]["revision"] == head.as_str()
    });
    let second = replica(root, &repo, &sim, &etcd, "second");
    wait(
        "the second replica follows",
        Duration::from_secs(20),
        || role(&second) == "follower",
    );

    // The leader freezes; the follower takes over once the lease ends.
    first.signal("STOP");
    let stopped = Instant::now();
    wait("the second replica leads", Duration::from_secs(20), || {
        role(&second) == "leader"
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(3 + 15),
        "took over within 15 s of the lease expiring"
    );
    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 75"));
    repo.commit("APAC to 75");
    repo.push(false);
    let head = repo.git(&["rev-parse", "HEAD"]);
    second.wait_for(Duration::from_secs(60), "the new leader applies", |s| {
        s["last_applied"]["revision"] == head.as_str()
    });
    // Out of band, the dial moves: the resumed replica, which never saw
    // the new commit, would write it back if it could.
    let set = sim_run(
        root,
        &sim,
        &[
            "sim",
            "set-dial",
            "api",
            "ap-southeast-1",
            "10",
            "--listener",
            "https",
        ],
    );
    assert_eq!(set.code, 0, "{}", set.all());
    let writes = call_totals(&sim).1;
    first.signal("CONT");
    wait(
        "the resumed replica steps down",
        Duration::from_secs(20),
        || {
            let s = first.status();
            s["election"]["role"] == "follower" && s["election"]["stepped_down"].is_string()
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(call_totals(&sim).1, writes, "no write after resuming");
    let s = first.status();
    assert!(
        s["election"]["stepped_down"]
            .as_str()
            .is_some_and(|w| w.contains("lease") || w.contains("newer leader")),
        "{s:#}"
    );
    assert_eq!(s["election"]["leader"], "second", "{s:#}");
}
