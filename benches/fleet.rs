//! The reference fleet: A accelerators × 2 listeners × 3 endpoint groups × 4
//! endpoints (33·A objects, 16,500 at A = 500) with one Provider, on the
//! simulated cloud, swept over A.
//!
//! `cargo bench --bench fleet` runs A = 50 and 500; `-- --accelerators
//! 50,500,5000` chooses the sweep and `-- --limits off|default|both` the
//! modes; `-- --core-repeat N` runs the in-process planning core N times
//! instead of five (best of N), to give a profiler something to sample.
//! Each scenario runs twice: with the rate
//! limits lifted (`sim limits --off`: meridian's own cost; one world, the
//! scenarios one after another) and under the documented limits
//! (convergence against the bound they set; each scenario in its own
//! simulated account, side by side, since the limits are per account). For each it
//! prints reads and writes against the minimum the fleet needs, the time
//! against the lower bound set by the limits, the peak RSS of the command
//! (GNU time, when installed), and for the no-op plan the planning core's
//! time in process (desired expansion, diff, schedule and invariants; no
//! I/O) and the scaling exponent across the sweep. The method and the
//! latest figures are in docs/performance.md. Timing lives here, never in
//! pass/fail tests.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/fleet.rs"]
mod fleet;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Run, sim_run};
use fleet::{ENDPOINTS, LISTENERS, REGIONS, fleet_files};

/// The Global Accelerator stand-in bucket (docs/simulator.md).
const GA_BURST: f64 = 100.0;
const GA_PER_SECOND: f64 = 20.0;
/// Global Accelerator's largest page of `ListAccelerators`.
const PAGE: usize = 100;

/// Read and write totals, and the calls throttled, from the simulator's
/// store (read in place: `sim show` would print the whole fleet).
fn counters(sim: &Path) -> (u64, u64, u64) {
    let world = meridian_sim::store::SimStore::open(sim)
        .and_then(|store| store.read())
        .expect("the simulated world opens");
    let throttled = world.calls.values().map(|c| c.throttled).sum();
    (world.total_calls(false), world.total_calls(true), throttled)
}

/// One measured command: its run, wall time and peak RSS (KiB) if GNU
/// time is installed.
struct Measured {
    run: Run,
    wall: Duration,
    rss_kib: Option<u64>,
}

fn gnu_time() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/time");
    path.exists().then_some(path)
}

fn measure(root: &Path, sim: &Path, args: &[&str]) -> Measured {
    let binary = env!("CARGO_BIN_EXE_meridian");
    let rss_file = root.join("rss");
    let mut command = match gnu_time() {
        Some(time) => {
            let mut c = Command::new(time);
            c.args(["-f", "%M", "-o"]).arg(&rss_file).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    command
        .arg("--sim")
        .arg(sim)
        .args(args)
        .current_dir(root)
        .env_remove("MERIDIAN_SIM")
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let output = command.output().expect("meridian runs");
    let wall = started.elapsed();
    let rss_kib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()));
    Measured {
        run: Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        wall,
        rss_kib,
    }
}

/// What one scenario needs at least, and the bound that sets on its time.
struct Minimum {
    reads: u64,
    writes: u64,
}

impl Minimum {
    /// The least time the Global Accelerator bucket allows for these calls.
    fn bound(&self) -> Duration {
        let calls = (self.reads + self.writes) as f64;
        Duration::from_secs_f64(((calls - GA_BURST).max(0.0)) / GA_PER_SECOND)
    }
}

/// Reads of one observation of the fleet: the list calls, and what
/// ownership costs (one `ListTagsForResource` per accelerator, since
/// `ListAccelerators` carries no tags).
fn observation_reads(accelerators: usize) -> (u64, u64) {
    let lists = accelerators.div_ceil(PAGE) + accelerators + accelerators * LISTENERS.len();
    (lists as u64, accelerators as u64)
}

struct Row {
    scenario: &'static str,
    limits: &'static str,
    reads: u64,
    writes: u64,
    throttled: u64,
    minimum: Minimum,
    wall: Duration,
    rss_kib: Option<u64>,
}

fn ratio(measured: u64, minimum: u64) -> String {
    if minimum == 0 {
        if measured == 0 {
            "= 0".to_owned()
        } else {
            format!("{measured} (minimum 0)")
        }
    } else {
        format!("{:.2}×", measured as f64 / minimum as f64)
    }
}

impl Row {
    fn print(&self) {
        let bound = self.minimum.bound();
        let time = if self.limits == "default" && bound > Duration::from_millis(500) {
            format!(
                "{:>7.2} s = {:.2}× the bound {:.1} s",
                self.wall.as_secs_f64(),
                self.wall.as_secs_f64() / bound.as_secs_f64(),
                bound.as_secs_f64()
            )
        } else {
            format!("{:>7.2} s", self.wall.as_secs_f64())
        };
        println!(
            "  {:<18} limits {:<7} reads {:>6} ({:>9})  writes {:>6} ({:>12})  throttled {:>5}  {}  peak RSS {}",
            self.scenario,
            self.limits,
            self.reads,
            ratio(self.reads, self.minimum.reads),
            self.writes,
            ratio(self.writes, self.minimum.writes),
            self.throttled,
            time,
            self.rss_kib
                .map_or("n/a (GNU time not installed)".to_owned(), |k| format!(
                    "{:.0} MB",
                    k as f64 / 1024.0
                )),
        );
    }
}

/// Under the default limits, waits for the bucket to refill: the bound
/// assumes a scenario starts with a full one.
fn refill(limits: &str) {
    if limits == "default" {
        std::thread::sleep(Duration::from_secs_f64(GA_BURST / GA_PER_SECOND));
    }
}

/// Runs `args`, which must exit with `code`, and records the row.
#[allow(clippy::too_many_arguments)]
fn measured(
    rows: &mut Vec<Row>,
    root: &Path,
    sim: &Path,
    name: &'static str,
    limits: &'static str,
    args: &[&str],
    code: i32,
    minimum: Minimum,
) {
    refill(limits);
    let (r0, w0, t0) = counters(sim);
    let measured = measure(root, sim, args);
    assert_eq!(
        measured.run.code,
        code,
        "{name} ({limits} limits): {}",
        measured.run.all()
    );
    let (r1, w1, t1) = counters(sim);
    rows.push(Row {
        scenario: name,
        limits,
        reads: r1 - r0,
        writes: w1 - w0,
        throttled: t1 - t0,
        minimum,
        wall: measured.wall,
        rss_kib: measured.rss_kib,
    });
}

fn ok(run: &Run, what: &str) {
    assert_eq!(run.code, 0, "{what}: {}", run.all());
}

/// The planning core on an observation of the fleet, in this process:
/// expansion, diff, schedule and invariants, best of five.
fn planning_core(root: &Path, sim: &Path, repeat: usize) -> Duration {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let state = meridian::model::load_dir(&root.join("desired-state")).expect("fleet loads");
        let options = meridian::providers::ProviderOptions {
            sim_dir: Some(sim.to_path_buf()),
            retry: Default::default(),
        };
        let providers = meridian::providers::Providers::build(&state, &options)
            .await
            .expect("providers");
        let desired = meridian::desired::expand(&state);
        let observation = meridian::observe::observe(&providers, &desired).await;
        let mut best = Duration::MAX;
        for _ in 0..repeat {
            let started = Instant::now();
            let desired = meridian::desired::expand(&state);
            let mut plan = meridian::plan::make(&state, &desired, &observation, None);
            meridian::rollout::annotate_invariants(&mut plan, &state, &desired, &observation);
            let took = started.elapsed();
            assert!(plan.changes.is_empty(), "the fleet is converged");
            best = best.min(took);
        }
        best
    })
}

struct Sweep {
    accelerators: usize,
    noop_off: Duration,
    core: Duration,
}

/// The scenarios, in the order the limits-off run takes them on one world
/// (each starts from the world the one before left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    ColdCreate,
    NoopPlan,
    SmallMerge,
    RegionFailover,
    Drift,
    RestartMidApply,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario::ColdCreate,
    Scenario::NoopPlan,
    Scenario::SmallMerge,
    Scenario::RegionFailover,
    Scenario::Drift,
    Scenario::RestartMidApply,
];

/// The fleet's size and what its scenarios need at least.
#[derive(Debug, Clone, Copy)]
struct Fleet {
    accelerators: usize,
    /// Endpoint groups in the fleet.
    groups: usize,
    /// Reads of one observation, with ownership.
    observe: u64,
    /// Writes of the cold create.
    create_writes: u64,
    /// Endpoint groups of one region (the failover's writes).
    region_groups: u64,
    /// Endpoint groups the 1% drift changes.
    drifted: usize,
}

impl Fleet {
    fn new(accelerators: usize) -> Self {
        let groups = accelerators * LISTENERS.len() * REGIONS.len();
        let (lists, tags) = observation_reads(accelerators);
        Self {
            accelerators,
            groups,
            observe: lists + tags,
            create_writes: (accelerators * (1 + LISTENERS.len()) + groups) as u64,
            region_groups: (accelerators * LISTENERS.len()) as u64,
            drifted: groups.div_ceil(100),
        }
    }

    /// An apply that updates `updates` existing objects: one observation,
    /// and one describe per object before it is written (Global
    /// Accelerator has no conditional write: the describe is how a write
    /// finds that someone changed the object since it was observed).
    fn update(&self, updates: u64) -> Minimum {
        Minimum {
            reads: self.observe + updates,
            writes: updates,
        }
    }

    /// Writes the desired state in files of 500 accelerators (about 2 MB
    /// each, within the 4 MiB a file may hold), the same files every time.
    fn write_desired(&self, root: &Path, dial: impl Fn(usize, &str, &str) -> u8) {
        let folder = root.join("desired-state");
        std::fs::create_dir_all(&folder).expect("mkdir");
        for (name, text) in fleet_files(self.accelerators, dial) {
            std::fs::write(folder.join(name), text).expect("write");
        }
    }
}

fn every_dial_at_100(_: usize, _: &str, _: &str) -> u8 {
    100
}

/// A small merge: three endpoint groups' dials.
fn small_merge(a: usize, listener: &str, region: &str) -> u8 {
    if a < 3 && listener == "https" && region == "us-east-1" {
        60
    } else {
        100
    }
}

/// A one-region failover: us-east-1's dial to 0 everywhere.
fn drained(_: usize, _: &str, region: &str) -> u8 {
    if region == "us-east-1" { 0 } else { 100 }
}

/// A fresh simulated world in `root/sim` with the fleet's quota, immediate
/// deploys and the `limits` mode.
fn new_world(root: &Path, fleet: &Fleet, limits: &str) -> PathBuf {
    let sim = root.join("sim");
    let quota = (fleet.accelerators + 10).to_string();
    ok(
        &sim_run(root, &sim, &["sim", "quotas", "--accelerators", &quota]),
        "quotas",
    );
    // Deploys take no time here: the bound is the rate limits'.
    ok(
        &sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "0"]),
        "faults",
    );
    set_limits(root, &sim, limits);
    sim
}

fn set_limits(root: &Path, sim: &Path, limits: &str) {
    let flag = if limits == "off" {
        "--off"
    } else {
        "--default"
    };
    ok(&sim_run(root, sim, &["sim", "limits", flag]), "limits");
}

/// Runs `scenario` on the world in `root/sim` as the scenario before it
/// left it (or as [`prepare_alone`] made it), and returns its rows.
fn run_scenario(fleet: &Fleet, scenario: Scenario, root: &Path, limits: &'static str) -> Vec<Row> {
    let sim = root.join("sim");
    let mut rows = Vec::new();
    match scenario {
        Scenario::ColdCreate => {
            fleet.write_desired(root, every_dial_at_100);
            let minimum = Minimum {
                // An empty world: one ListAccelerators page shows it.
                reads: 1,
                writes: fleet.create_writes,
            };
            let args = ["apply", "--yes"];
            measured(
                &mut rows,
                root,
                &sim,
                "cold create",
                limits,
                &args,
                0,
                minimum,
            );
        }
        Scenario::NoopPlan => {
            let minimum = fleet.update(0);
            let args = ["plan", "--detailed-exitcode"];
            measured(
                &mut rows,
                root,
                &sim,
                "no-op plan",
                limits,
                &args,
                0,
                minimum,
            );
        }
        Scenario::SmallMerge => {
            fleet.write_desired(root, small_merge);
            let minimum = fleet.update(3);
            let args = ["apply", "--yes"];
            measured(
                &mut rows,
                root,
                &sim,
                "small merge",
                limits,
                &args,
                0,
                minimum,
            );
        }
        Scenario::RegionFailover => {
            fleet.write_desired(root, drained);
            let minimum = fleet.update(fleet.region_groups);
            let args = ["apply", "--yes"];
            measured(
                &mut rows,
                root,
                &sim,
                "region failover",
                limits,
                &args,
                0,
                minimum,
            );
        }
        Scenario::Drift => {
            // 1% out-of-band drift, found by `drift` and repaired by `apply`.
            for n in 0..fleet.drifted {
                let a = format!("svc-{:05}", n % fleet.accelerators);
                let (listener, _) = LISTENERS[(n / fleet.accelerators) % LISTENERS.len()];
                let args = [
                    "sim",
                    "set-dial",
                    &a,
                    "eu-west-1",
                    "40",
                    "--listener",
                    listener,
                ];
                ok(&sim_run(root, &sim, &args), "set-dial");
            }
            let minimum = fleet.update(0);
            let args = ["drift"];
            measured(
                &mut rows,
                root,
                &sim,
                "1% drift: drift",
                limits,
                &args,
                2,
                minimum,
            );
            let minimum = fleet.update(fleet.drifted as u64);
            let args = ["apply", "--yes"];
            measured(
                &mut rows,
                root,
                &sim,
                "1% drift: apply",
                limits,
                &args,
                0,
                minimum,
            );
        }
        Scenario::RestartMidApply => {
            // The drained region returns; the apply is killed (SIGKILL)
            // once half of its writes have landed, and the next one
            // finishes.
            fleet.write_desired(root, every_dial_at_100);
            refill(limits);
            let store = meridian_sim::store::SimStore::open(&sim).expect("the world opens");
            let (r0, w0, t0) = counters(&sim);
            let started = Instant::now();
            let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
                .arg("--sim")
                .arg(&sim)
                .args(["apply", "--yes"])
                .current_dir(root)
                .env_remove("MERIDIAN_SIM")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("meridian runs");
            let half = w0 + fleet.region_groups / 2;
            loop {
                let writes = store.read().expect("the world reads").total_calls(true);
                if writes >= half || child.try_wait().expect("waits").is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            let finish = measure(root, &sim, &["apply", "--yes"]);
            ok(&finish.run, "the apply after the restart");
            let (r1, w1, t1) = counters(&sim);
            let row = Row {
                scenario: "restart mid-apply",
                limits,
                reads: r1 - r0,
                writes: w1 - w0,
                throttled: t1 - t0,
                minimum: Minimum {
                    // Two observations, and a describe before each write.
                    reads: 2 * fleet.observe + fleet.region_groups,
                    writes: fleet.region_groups,
                },
                wall: started.elapsed(),
                rss_kib: finish.rss_kib,
            };
            rows.push(row);
            let replan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
            ok(&replan, "converged after the restart");
        }
    }
    rows
}

/// Readies `root` for `scenario` on its own, from a copy of the converged
/// fleet in `base` (limits lifted while it is made ready): the world the
/// scenario before it would have left.
fn prepare_alone(fleet: &Fleet, scenario: Scenario, base: &Path, root: &Path) {
    let sim = root.join("sim");
    if scenario == Scenario::ColdCreate {
        new_world(root, fleet, "off");
        return;
    }
    std::fs::create_dir_all(&sim).expect("mkdir");
    for entry in std::fs::read_dir(base.join("sim")).expect("the base world") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), sim.join(entry.file_name())).expect("copy the world");
    }
    fleet.write_desired(root, every_dial_at_100);
    if scenario == Scenario::RestartMidApply {
        fleet.write_desired(root, drained);
        ok(
            &sim_run(root, &sim, &["apply", "--yes"]),
            "drain before the restart",
        );
    }
}

/// Under the default limits every scenario runs in its own simulated
/// account, side by side: the limits are per account, so each meets a
/// full bucket of its own, and the run takes as long as its longest
/// scenario instead of the sum of them (at A = 500 the bounds alone add up
/// to more than a quarter of an hour). Each is made ready first, with the
/// limits lifted, and all start together.
fn side_by_side(fleet: &Fleet) -> Vec<Row> {
    let base_dir = tempfile::tempdir().expect("tempdir");
    let base = base_dir.path();
    new_world(base, fleet, "off");
    fleet.write_desired(base, every_dial_at_100);
    ok(
        &sim_run(base, &base.join("sim"), &["apply", "--yes"]),
        "the converged fleet",
    );
    let roots: Vec<tempfile::TempDir> = SCENARIOS
        .iter()
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let ready = std::sync::Barrier::new(SCENARIOS.len());
    let mut rows: Vec<Vec<Row>> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = SCENARIOS
            .iter()
            .zip(&roots)
            .map(|(&scenario, root)| {
                let ready = &ready;
                scope.spawn(move || {
                    let root = root.path();
                    prepare_alone(fleet, scenario, base, root);
                    set_limits(root, &root.join("sim"), "default");
                    ready.wait();
                    run_scenario(fleet, scenario, root, "default")
                })
            })
            .collect();
        rows = handles
            .into_iter()
            .map(|h| h.join().expect("a scenario ran"))
            .collect();
    });
    rows.into_iter().flatten().collect()
}

fn run_fleet(accelerators: usize, modes: &[&'static str], core_repeat: usize) -> Sweep {
    let fleet = Fleet::new(accelerators);
    let groups = fleet.groups;
    let objects = accelerators * (1 + LISTENERS.len() + groups / accelerators * (1 + ENDPOINTS));
    println!(
        "\nA = {accelerators}: {objects} objects ({} accelerators, {} listeners, {groups} endpoint groups, {} endpoints)",
        accelerators,
        accelerators * LISTENERS.len(),
        groups * ENDPOINTS
    );
    let (list_reads, tag_reads) = observation_reads(accelerators);
    println!(
        "  minimum reads per observation: {list_reads} list calls (⌈A/100⌉ ListAccelerators + A ListListeners + A·L ListEndpointGroups) + {tag_reads} ListTagsForResource (ownership: ListAccelerators carries no tags) = {}; an apply adds one DescribeEndpointGroup per group it updates (compare before write)",
        fleet.observe
    );
    let mut noop_off = Duration::ZERO;
    let mut core = Duration::ZERO;
    for &limits in modes {
        if limits == "default" {
            println!(
                "  under the default limits: each scenario in its own simulated account, side by side"
            );
            for row in side_by_side(&fleet) {
                row.print();
            }
            continue;
        }
        // Limits lifted: one world, the scenarios one after another, each
        // from the world the one before left.
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let sim = new_world(root, &fleet, limits);
        for scenario in SCENARIOS {
            let rows = run_scenario(&fleet, scenario, root, limits);
            for row in &rows {
                row.print();
            }
            if scenario == Scenario::NoopPlan {
                noop_off = rows[0].wall;
                core = planning_core(root, &sim, core_repeat);
                println!(
                    "  planning core (expand, diff, schedule, invariants; no I/O): {:.1} ms",
                    core.as_secs_f64() * 1000.0
                );
            }
        }
    }
    Sweep {
        accelerators,
        noop_off,
        core,
    }
}

fn exponent(a: &Sweep, b: &Sweep, pick: impl Fn(&Sweep) -> Duration) -> f64 {
    (pick(b).as_secs_f64() / pick(a).as_secs_f64()).ln()
        / (b.accelerators as f64 / a.accelerators as f64).ln()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`. Under `cargo test --all-targets` the
    // binary runs without it: a fleet of 5 with the limits lifted keeps the
    // benchmark working without spending the suite's time on measurements.
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut sweep = if smoke {
        vec![5usize]
    } else {
        vec![50usize, 500]
    };
    if let Some(i) = args.iter().position(|a| a == "--accelerators")
        && let Some(list) = args.get(i + 1)
    {
        sweep = list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .expect("--accelerators takes numbers, e.g. 50,500")
            })
            .collect();
    }
    let modes: Vec<&'static str> = match args
        .iter()
        .position(|a| a == "--limits")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
    {
        None if smoke => vec!["off"],
        None | Some("both") => vec!["off", "default"],
        Some("off") => vec!["off"],
        Some("default") => vec!["default"],
        Some(other) => panic!("--limits takes off, default or both, not {other}"),
    };
    // The planning core runs best of five; `--core-repeat N` runs it more
    // often, for a profiler.
    let core_repeat = args
        .iter()
        .position(|a| a == "--core-repeat")
        .and_then(|i| args.get(i + 1))
        .map_or(5, |n| n.parse().expect("--core-repeat takes a number"));
    println!(
        "fleet benchmark: A × {} listeners × {} endpoint groups × {ENDPOINTS} endpoints; deploy delay 0; Global Accelerator bucket {GA_BURST} burst / {GA_PER_SECOND} per s under the default limits",
        LISTENERS.len(),
        REGIONS.len()
    );
    let results: Vec<Sweep> = sweep
        .iter()
        .map(|&a| run_fleet(a, &modes, core_repeat))
        .collect();
    println!();
    for pair in results.windows(2).filter(|p| !p[0].noop_off.is_zero()) {
        let (a, b) = (&pair[0], &pair[1]);
        println!(
            "scaling exponent A = {} → {}: no-op plan (limits off) {:.2}, planning core {:.2}",
            a.accelerators,
            b.accelerators,
            exponent(a, b, |s| s.noop_off),
            exponent(a, b, |s| s.core)
        );
    }
    for s in results.iter().filter(|s| !s.noop_off.is_zero()) {
        println!(
            "A = {}: no-op plan {:.2} s end to end (target ≤ 1 s at 500), planning core {:.1} ms (target ≤ 100 ms at 500)",
            s.accelerators,
            s.noop_off.as_secs_f64(),
            s.core.as_secs_f64() * 1000.0
        );
    }
}
