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
    dir: PathBuf,
    ports: (u16, u16),
}

impl Etcd {
    fn start(dir: &Path) -> Self {
        Self::start_on(dir, (free_port(), free_port()))
    }

    fn start_on(dir: &Path, (client, peer): (u16, u16)) -> Self {
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
            dir: dir.to_path_buf(),
            ports: (client, peer),
        }
    }

    /// Stops the server (its data stays).
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports and data.
    fn restart(&mut self) {
        // The old process has exited; dropping its handle again is harmless.
        let again = Self::start_on(&self.dir.clone(), self.ports);
        drop(std::mem::replace(self, again));
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(root: &Path, repo: &Repo, sim: &Path, etcd: &Etcd, name: &str) -> Daemon {
    replica_timed(root, repo, sim, etcd, name, ("3s", "2s"))
}

fn replica_timed(
    root: &Path,
    repo: &Repo,
    sim: &Path,
    etcd: &Etcd,
    name: &str,
    (lease, renew): (&str, &str),
) -> Daemon {
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
            lease,
            "--renew-deadline",
            renew,
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
    // A 10 s lease: the handover at the end must beat it by far.
    let a = replica_timed(root, &repo, &sim, &etcd, "replica-a", ("10s", "6s"));
    let b = replica_timed(root, &repo, &sim, &etcd, "replica-b", ("10s", "6s"));
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

    // SIGTERM hands over at once: the lease is revoked, so the follower
    // leads well before the 10 s lease would have expired.
    let leader_is_a = roles[0] == "leader";
    let (mut leader, follower) = if leader_is_a { (a, b) } else { (b, a) };
    let term = follower.status()["election"]["term"].as_i64().unwrap_or(0);
    let asked = Instant::now();
    assert_eq!(leader.terminate(), 0);
    wait(
        "the follower leads after the handover",
        Duration::from_secs(10),
        || role(&follower) == "leader",
    );
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "handed over before the lease expired: {:?}",
        asked.elapsed()
    );
    assert!(
        follower.status()["election"]["term"].as_i64().unwrap_or(0) > term,
        "a newer term"
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

/// The dials an endpoint group was written to, in order, from the
/// simulator's history (entries after `from`).
fn dial_writes(sim: &Path, group: &str, from: usize) -> Vec<u64> {
    let world = common::world(sim);
    world["history"]
        .as_array()
        .expect("history")
        .iter()
        .skip(from)
        .filter(|h| h["operation"] == "UpdateEndpointGroup" && h["target"] == group)
        .filter_map(|h| {
            h["detail"]
                .as_str()?
                .split_whitespace()
                .find_map(|w| w.strip_prefix("dial="))?
                .parse()
                .ok()
        })
        .collect()
}

fn history_len(sim: &Path) -> usize {
    common::world(sim)["history"].as_array().map_or(0, Vec::len)
}

/// The api accelerator's https group in ap-southeast-1.
fn apac_group(sim: &Path) -> String {
    let world = common::world(sim);
    let accelerator = world["accelerators"]
        .as_object()
        .expect("accelerators")
        .values()
        .find(|a| a["name"] == "api")
        .and_then(|a| a["arn"].as_str())
        .expect("api")
        .to_owned();
    let listeners = world["listeners"].as_object().expect("listeners");
    world["endpoint_groups"]
        .as_object()
        .expect("groups")
        .iter()
        .find(|(arn, g)| {
            arn.starts_with(&accelerator)
                && g["spec"]["region"] == "ap-southeast-1"
                && listeners[g["listener_arn"].as_str().expect("listener")]["spec"]["portRanges"][0]
                    ["from"]
                    == 443
        })
        .map(|(arn, _)| arn.clone())
        .expect("the group")
}

const STEPPED: &str = "apiVersion: meridian.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: stepped
spec:
  selector: {kind: GlobalAccelerator, names: [api]}
  maxStepPercent: 25
  bakeSeconds: 1
  flapHoldSeconds: 0
";

#[test]
fn a_leader_killed_mid_rollout_is_succeeded_at_the_right_step_every_time() {
    let trials: usize = std::env::var("MERIDIAN_HA_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let etcd = Etcd::start(root);
    let (mut repo, sim) = setup(root);
    // The example's careful policy is made instant by the fixture; this
    // one steps the api accelerator by 25 points with a 1 s bake, and lets
    // each trial reverse the last (no anti-flap hold).
    let policies = repo.read("desired-state/policies.yaml");
    let policies = policies.replace("names: [api]", "names: [accounts-eu]");
    repo.write("desired-state/policies.yaml", &policies);
    repo.write("desired-state/stepped.yaml", STEPPED);
    repo.commit("stepped rollouts for api");
    repo.push(false);
    let mut replicas = vec![
        replica(root, &repo, &sim, &etcd, "r0"),
        replica(root, &repo, &sim, &etcd, "r1"),
    ];
    let head = repo.git(&["rev-parse", "HEAD"]);
    wait("the first commit applied", Duration::from_secs(90), || {
        replicas
            .iter()
            .any(|d| d.status()["last_applied"]["revision"] == head.as_str())
    });
    let group = apac_group(&sim);
    let mut dial = 50u64;
    let mut next_name = 2;
    let mut mid_rollout = 0;
    for trial in 0..trials {
        let target = if dial == 0 { 100 } else { 0 };
        let text = repo.read(GA);
        let current = format!("trafficDial: {dial}            # APAC still warming up");
        assert!(text.contains(&current), "trial {trial}: {current}");
        repo.write(
            GA,
            &text.replace(
                &current,
                &format!("trafficDial: {target}            # APAC still warming up"),
            ),
        );
        repo.commit(&format!("trial {trial}: APAC to {target}"));
        repo.push(false);
        let head = repo.git(&["rev-parse", "HEAD"]);
        let from = history_len(&sim);
        // Kill the leader at a random point of the rollout.
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..4000)));
        let leader = replicas.iter().position(|d| role(d) == "leader");
        if let Some(i) = leader {
            let done_before = dial_writes(&sim, &group, from).len();
            replicas[i].signal("KILL");
            let steps = if target == 100 {
                (100 - dial) / 25
            } else {
                dial / 25
            };
            if done_before > 0 && (done_before as u64) < steps {
                mid_rollout += 1;
            }
            replicas.remove(i);
            replicas.push(replica(root, &repo, &sim, &etcd, &format!("r{next_name}")));
            next_name += 1;
            wait(
                &format!("trial {trial}: a new leader within 15 s of the lease expiring"),
                Duration::from_secs(3 + 15),
                || replicas.iter().any(|d| role(d) == "leader"),
            );
        }
        wait(
            &format!("trial {trial}: the rollout finishes"),
            Duration::from_secs(90),
            || {
                replicas.iter().any(|d| {
                    let s = d.status();
                    s["last_applied"]["revision"] == head.as_str()
                })
            },
        );
        let written = dial_writes(&sim, &group, from);
        let expected: Vec<u64> = if target == 100 {
            vec![25, 50, 75, 100]
                .into_iter()
                .filter(|d| *d > dial)
                .collect()
        } else {
            vec![75, 50, 25, 0]
                .into_iter()
                .filter(|d| *d < dial)
                .collect()
        };
        assert_eq!(
            written, expected,
            "trial {trial} (from {dial} to {target}): every step once, in order"
        );
        dial = target;
    }
    assert!(
        mid_rollout * 4 >= trials,
        "only {mid_rollout} of {trials} kills landed between two steps of a rollout"
    );
}

#[test]
fn while_etcd_is_down_nothing_is_written_and_the_replicas_converge_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let mut etcd = Etcd::start(root);
    let (mut repo, sim) = setup(root);
    let a = replica(root, &repo, &sim, &etcd, "a");
    let b = replica(root, &repo, &sim, &etcd, "b");
    let head = repo.git(&["rev-parse", "HEAD"]);
    wait("the first commit applied", Duration::from_secs(60), || {
        [&a, &b]
            .iter()
            .any(|d| d.status()["last_applied"]["revision"] == head.as_str())
    });
    etcd.stop();
    repo.write(GA, &repo.read(GA).replace(APAC_DIAL, "trafficDial: 75"));
    repo.commit("APAC to 75 while etcd is down");
    repo.push(false);
    let head = repo.git(&["rev-parse", "HEAD"]);
    let writes = call_totals(&sim).1;
    wait(
        "both replicas see the outage",
        Duration::from_secs(20),
        || role(&a) == "unreachable" && role(&b) == "unreachable",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(call_totals(&sim).1, writes, "no write while etcd is gone");
    assert_eq!(a.get("/healthz").status, 200);
    assert_eq!(b.get("/status").status, 200, "reads are served");
    etcd.restart();
    wait(
        "convergence after etcd returns",
        Duration::from_secs(60),
        || {
            [&a, &b]
                .iter()
                .any(|d| d.status()["last_applied"]["revision"] == head.as_str())
        },
    );
    assert_eq!(call_totals(&sim).1, writes + 1, "the change, once");
}

#[test]
fn a_deploy_job_applies_as_the_leader_and_keeps_its_ledger_in_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let etcd = Etcd::start(root);
    let (repo, sim) = setup(root);
    let state = root.join("job-state");
    let folder = repo.work.join("desired-state");
    let apply = sim_run(
        root,
        &sim,
        &[
            "apply",
            folder.to_str().expect("utf-8"),
            "--yes",
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--election",
            &etcd.url,
        ],
    );
    assert_eq!(apply.code, 0, "{}", apply.all());
    assert!(
        !state.join("rollout.json").exists(),
        "the ledger is in etcd, not in the job's state directory"
    );
    let writes = call_totals(&sim).1;
    // So is the audit trail: a line per write the cloud recorded.
    assert!(
        !state.join("audit.jsonl").exists(),
        "the audit trail is in etcd, not in the job's state directory"
    );
    let audit = common::meridian(
        root,
        &["audit", "--election", &etcd.url, "--format", "json"],
    );
    assert_eq!(audit.code, 0, "{}", audit.all());
    let lines: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(
        lines.iter().filter(|l| l["outcome"] == "ok").count() as u64,
        writes,
        "one line per write"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["trigger"] == "apply" && l["actor"].as_str().is_some_and(|a| !a.is_empty())),
        "{lines:#?}"
    );
    // A break-glass override on the same etcd lands in the same trail.
    let set = sim_run(
        root,
        &sim,
        &[
            "override",
            "set",
            "GlobalAccelerator/api",
            "--until",
            "1h",
            "--dir",
            folder.to_str().expect("utf-8"),
            "--election",
            &etcd.url,
        ],
    );
    assert_eq!(set.code, 0, "{}", set.all());
    let audit = common::meridian(
        root,
        &[
            "audit",
            "--election",
            &etcd.url,
            "--object",
            "GlobalAccelerator[api]",
            "--format",
            "json",
        ],
    );
    assert_eq!(audit.code, 0, "{}", audit.all());
    assert!(
        audit
            .stdout
            .lines()
            .any(|l| l.contains("\"trigger\":\"override\"") && l.contains("TagResource")),
        "{}",
        audit.stdout
    );
    let writes = call_totals(&sim).1;
    // A replica on the same etcd takes over at once (the job resigned)
    // and finds nothing to do.
    let replica = replica(root, &repo, &sim, &etcd, "after-the-job");
    let head = repo.git(&["rev-parse", "HEAD"]);
    replica.wait_for(Duration::from_secs(30), "the replica settles", |s| {
        s["last_applied"]["revision"] == head.as_str()
            || s["last_attempted"]["outcome"] == "no_changes"
    });
    assert_eq!(call_totals(&sim).1, writes, "nothing applied twice");
    drop(replica);

    // A release on the same etcd is recorded there too.
    let release = sim_run(
        root,
        &sim,
        &[
            "release",
            "GlobalAccelerator/api",
            folder.to_str().expect("utf-8"),
            "--force",
            "--election",
            &etcd.url,
        ],
    );
    assert_eq!(release.code, 0, "{}", release.all());
    let audit = common::meridian(
        root,
        &["audit", "--election", &etcd.url, "--format", "json"],
    );
    let released: Vec<&str> = audit
        .stdout
        .lines()
        .filter(|l| l.contains("\"trigger\":\"release\""))
        .collect();
    assert_eq!(
        released.len() as u64,
        call_totals(&sim).1 - writes,
        "a line per write of the release: {}",
        audit.stdout
    );
    assert!(!released.is_empty(), "{}", audit.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deposed_leader_is_fenced_by_etcd_while_it_still_believes_it_leads() {
    use meridian::daemon::election::{Election, EtcdTarget, Timings};
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = Etcd::start(dir.path());
    let target = EtcdTarget::parse(&etcd.url).expect("url");
    // A's own clock never gives up (a 60 s renew deadline on a 1 s lease):
    // only etcd's comparison can stop it, as for a process paused and
    // resumed before its clock noticed.
    let a = Election::new(
        target.clone(),
        "a".to_owned(),
        Timings {
            lease: Duration::from_secs(1),
            renew_deadline: Duration::from_secs(60),
            retry: Duration::from_millis(100),
        },
    );
    a.round().await;
    let ta = a.current_term().expect("a leads");
    a.fence(ta).await.expect("fenced in");
    a.put_fenced(ta, "ledger", b"from a".to_vec())
        .await
        .expect("a writes");
    // A stops renewing; its lease ends; B is elected.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let b = Election::new(target, "b".to_owned(), Timings::default());
    b.round().await;
    let tb = b.current_term().expect("b leads");
    assert!(tb > ta, "a newer term: {tb} > {ta}");
    b.put_fenced(tb, "ledger", b"from b".to_vec())
        .await
        .expect("b writes");

    assert!(a.holds(ta), "by its own clock, a still leads");
    let refused = a.fence(ta).await.expect_err("etcd refuses the old term");
    assert!(refused.contains("lost"), "{refused}");
    assert!(
        a.put_fenced(ta, "ledger", b"late a".to_vec())
            .await
            .is_err()
    );
    let ledger = a
        .etcd()
        .get(&a.etcd().key("ledger"))
        .await
        .expect("etcd")
        .map(|(v, _)| v);
    assert_eq!(
        ledger.as_deref(),
        Some(&b"from b"[..]),
        "the new leader's ledger stands"
    );
    let standing = a.standing();
    assert_eq!(standing.role, meridian::daemon::election::Role::Follower);
    assert!(
        standing
            .stepped_down
            .is_some_and(|w| w.contains("newer leader")),
        "a reports why it stepped down"
    );
}
