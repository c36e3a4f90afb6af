//! The reference fleet: A accelerators × 2 listeners × 3 endpoint groups × 4
//! endpoints (33·A objects, 16,500 at A = 500) with one Provider, on the
//! simulated cloud, swept over A.
//!
//! `cargo bench --bench fleet` runs A = 50 and 500; `-- --accelerators
//! 50,500,5000` chooses the sweep and `-- --limits off|default|both` the
//! modes; `-- --core-repeat N` runs the in-process planning core N times
//! instead of five (best of N), to give a profiler something to sample.
//! Each scenario runs twice: with the rate
//! limits lifted (`sim limits --off`: meridian's own cost) and under the
//! documented limits (convergence against the bound they set). For each it
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

use common::{Run, sim_run, world};
use fleet::{ENDPOINTS, LISTENERS, REGIONS, fleet_yaml};

/// The Global Accelerator stand-in bucket (docs/simulator.md).
const GA_BURST: f64 = 100.0;
const GA_PER_SECOND: f64 = 20.0;
/// Global Accelerator's largest page of `ListAccelerators`.
const PAGE: usize = 100;

/// Read and write totals, and the calls throttled, from the simulator.
fn counters(sim: &Path) -> (u64, u64, u64) {
    let world = world(sim);
    let throttled = world["calls"]
        .as_object()
        .map(|calls| {
            calls
                .values()
                .map(|c| c["throttled"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    (
        world["call_totals"]["read"].as_u64().unwrap_or(0),
        world["call_totals"]["write"].as_u64().unwrap_or(0),
        throttled,
    )
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

/// Runs `args`, which must exit with `code`, and records the row.
#[allow(clippy::too_many_arguments)]
fn scenario(
    rows: &mut Vec<Row>,
    root: &Path,
    sim: &Path,
    name: &'static str,
    limits: &'static str,
    args: &[&str],
    code: i32,
    minimum: Minimum,
) -> Measured {
    if limits == "default" {
        // The bound assumes a full bucket: let the last scenario's calls
        // refill it first.
        std::thread::sleep(Duration::from_secs_f64(GA_BURST / GA_PER_SECOND));
    }
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
    rows.last().expect("pushed").print();
    measured
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

fn run_fleet(accelerators: usize, modes: &[&'static str], core_repeat: usize) -> Sweep {
    let groups = accelerators * LISTENERS.len() * REGIONS.len();
    let objects = accelerators * (1 + LISTENERS.len() + groups / accelerators * (1 + ENDPOINTS));
    println!(
        "\nA = {accelerators}: {objects} objects ({} accelerators, {} listeners, {groups} endpoint groups, {} endpoints)",
        accelerators,
        accelerators * LISTENERS.len(),
        groups * ENDPOINTS
    );
    let (list_reads, tag_reads) = observation_reads(accelerators);
    let observe_min = list_reads + tag_reads;
    println!(
        "  minimum reads per observation: {list_reads} list calls (⌈A/100⌉ ListAccelerators + A ListListeners + A·L ListEndpointGroups) + {tag_reads} ListTagsForResource (ownership: ListAccelerators carries no tags) = {observe_min}"
    );
    let create_writes = (accelerators * (1 + LISTENERS.len()) + groups) as u64;
    let mut rows = Vec::new();
    let mut noop_off = Duration::ZERO;
    let mut core = Duration::ZERO;
    for &limits in modes {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let sim = root.join("sim");
        let folder = root.join("desired-state");
        std::fs::create_dir_all(&folder).expect("mkdir");
        let fleet = folder.join("fleet.yaml");
        std::fs::write(&fleet, fleet_yaml(accelerators, |_, _, _| 100)).expect("write");
        let quota = (accelerators + 10).to_string();
        ok(
            &sim_run(root, &sim, &["sim", "quotas", "--accelerators", &quota]),
            "quotas",
        );
        // Deploys take no time here: the bound is the rate limits'.
        ok(
            &sim_run(root, &sim, &["sim", "faults", "--deploy-delay-ms", "0"]),
            "faults",
        );
        let flag = if limits == "off" {
            "--off"
        } else {
            "--default"
        };
        ok(&sim_run(root, &sim, &["sim", "limits", flag]), "limits");

        scenario(
            &mut rows,
            root,
            &sim,
            "cold create",
            limits,
            &["apply", "--yes"],
            0,
            Minimum {
                // An empty world: one ListAccelerators page shows it.
                reads: 1,
                writes: create_writes,
            },
        );
        let noop = scenario(
            &mut rows,
            root,
            &sim,
            "no-op plan",
            limits,
            &["plan", "--detailed-exitcode"],
            0,
            Minimum {
                reads: observe_min,
                writes: 0,
            },
        );
        if limits == "off" {
            noop_off = noop.wall;
            core = planning_core(root, &sim, core_repeat);
            println!(
                "  planning core (expand, diff, schedule, invariants; no I/O): {:.1} ms",
                core.as_secs_f64() * 1000.0
            );
        }

        // A small merge: three endpoint groups' dials.
        let small = |a: usize, listener: &str, region: &str| {
            if a < 3 && listener == "https" && region == "us-east-1" {
                60
            } else {
                100
            }
        };
        std::fs::write(&fleet, fleet_yaml(accelerators, small)).expect("write");
        scenario(
            &mut rows,
            root,
            &sim,
            "small merge",
            limits,
            &["apply", "--yes"],
            0,
            Minimum {
                reads: observe_min,
                writes: 3,
            },
        );

        // A one-region failover: us-east-1's dial to 0 everywhere.
        let drained = |_: usize, _: &str, region: &str| if region == "us-east-1" { 0 } else { 100 };
        std::fs::write(&fleet, fleet_yaml(accelerators, drained)).expect("write");
        let region_groups = (accelerators * LISTENERS.len()) as u64;
        let failover = scenario(
            &mut rows,
            root,
            &sim,
            "region failover",
            limits,
            &["apply", "--yes"],
            0,
            Minimum {
                reads: observe_min,
                writes: region_groups,
            },
        );

        // 1% out-of-band drift, found by `drift` and repaired by `apply`.
        let drifted = groups.div_ceil(100);
        for n in 0..drifted {
            let a = format!("svc-{:05}", n % accelerators);
            let (listener, _) = LISTENERS[(n / accelerators) % LISTENERS.len()];
            ok(
                &sim_run(
                    root,
                    &sim,
                    &[
                        "sim",
                        "set-dial",
                        &a,
                        "eu-west-1",
                        "40",
                        "--listener",
                        listener,
                    ],
                ),
                "set-dial",
            );
        }
        scenario(
            &mut rows,
            root,
            &sim,
            "1% drift: drift",
            limits,
            &["drift"],
            2,
            Minimum {
                reads: observe_min,
                writes: 0,
            },
        );
        scenario(
            &mut rows,
            root,
            &sim,
            "1% drift: apply",
            limits,
            &["apply", "--yes"],
            0,
            Minimum {
                reads: observe_min,
                writes: drifted as u64,
            },
        );

        // A restart in the middle of an apply: the region comes back, the
        // apply is killed half-way, the next one finishes.
        std::fs::write(&fleet, fleet_yaml(accelerators, |_, _, _| 100)).expect("write");
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
        std::thread::sleep(failover.wall / 2);
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
                reads: 2 * observe_min,
                writes: region_groups,
            },
            wall: started.elapsed(),
            rss_kib: finish.rss_kib,
        };
        row.print();
        rows.push(row);
        let replan = sim_run(root, &sim, &["plan", "--detailed-exitcode"]);
        ok(&replan, "converged after the restart");
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
