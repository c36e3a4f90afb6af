//! The `meridian` command line: GitOps for global traffic.
//!
//! Parses arguments, wires the library together, prints human output to
//! stdout and logs to stderr, and maps outcomes to the exit codes in
//! [`meridian::exit`]. It holds no reconcile logic of its own.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use meridian::engine::{self, EngineOptions, Outcome, Progress, Providers};
use meridian::exit;
use meridian::model::{self, DesiredState, LoadError};
use meridian::plan::Plan;
use meridian::plan::render::{self, Format, Style};
use meridian::rollout::{self, LedgerStore};
use meridian::{desired, simcli};
use meridian_provider::Change;
use meridian_sim::world::Faults;
use meridian_sim::{SimCloud, SimStore};

/// GitOps reconciler for multi-region global traffic: AWS Global Accelerator,
/// GCP global load balancing and Transit Gateway peering, kept in Git and
/// applied step by step.
#[derive(Debug, Parser)]
#[command(name = "meridian", version, about, long_about = None)]
struct Cli {
    /// Run every provider against the embedded simulated cloud persisted in DIR.
    #[arg(long, global = true, env = "MERIDIAN_SIM", value_name = "DIR")]
    sim: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check desired state offline; exit 0 when valid, 1 when not.
    Validate {
        /// Desired-state directory.
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
    },
    /// Show what apply would change.
    Plan(PlanArgs),
    /// Make the live world match desired state.
    Apply(ApplyArgs),
    /// Report how the live world differs from desired state; exit 2 on drift.
    Drift {
        /// Desired-state directory.
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Preview a pull request: desired-state diff, plan and traffic impact.
    Diff(DiffArgs),
    /// Watch a Git branch and keep the live world equal to it.
    Run(RunArgs),
    /// Serve the AWS Global Accelerator API (awsJson1_1, at POST /) and the
    /// Compute Engine REST API for global load balancing (at /compute/v1/)
    /// over the simulated cloud, for the providers, the official SDKs and
    /// CLIs. A local emulator: it checks no signature or credential, so it
    /// listens on loopback only.
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:4566")]
        listen: std::net::SocketAddr,
    },
    /// Show the status persisted by `meridian run`.
    Status {
        /// The daemon's state directory.
        #[arg(long, default_value = ".meridian-state")]
        state_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Allow a revision that failed its health gates to roll out again.
    Retry {
        /// The state directory holding the rollout ledger.
        #[arg(long, default_value = ".meridian-state")]
        state_dir: PathBuf,
        /// Only this revision (a prefix is enough); default: every failed one.
        #[arg(long)]
        revision: Option<String>,
    },
    /// Inspect or change the embedded simulated cloud (needs --sim DIR).
    #[command(subcommand)]
    Sim(SimCommand),
    /// Break-glass overrides: keep apply and `meridian run` from reverting
    /// traffic changes made by hand to an accelerator or backend service
    /// until a time.
    #[command(subcommand)]
    Override(OverrideCommand),
    /// Print the JSON Schema of desired-state documents (for editors).
    Schema,
    /// Simulate a region outage from desired state: each region's share of
    /// new traffic, headroom, failover paths, residency and serving regions
    /// during the outage. Exit 3 when a policy is violated, 2 when declared
    /// capacity runs short, 0 when the outage is absorbed.
    Whatif(WhatifArgs),
    /// Write the desired-state change that drains a region (dials and
    /// capacity scalers to 0), as a patch or a commit on a new branch. Never
    /// touches the live cloud; refuses unsafe drains with exit 3.
    Failover(FailoverArgs),
}

#[derive(Debug, Args)]
struct WhatifArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    dir: PathBuf,
    /// A region to take down, AWS or Google Cloud name (repeatable).
    #[arg(long = "region-down", value_name = "REGION", required = true)]
    region_down: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FailoverOutput {
    /// A unified diff on stdout, for `git apply`.
    Patch,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    dir: PathBuf,
    /// The region to drain (AWS or Google Cloud name).
    #[arg(long, value_name = "REGION")]
    from: String,
    /// A region to raise to full traffic (trafficDial 100, capacityScaler 1.0).
    #[arg(long, value_name = "REGION")]
    to: Option<String>,
    /// Print the change as a unified diff (the default).
    #[arg(long, value_enum, conflicts_with = "branch")]
    output: Option<FailoverOutput>,
    /// Instead, commit the change on a new branch NAME of the repository
    /// holding DIR, leaving the working tree and the current branch alone.
    #[arg(long, value_name = "NAME")]
    branch: Option<String>,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Save the plan (JSON) for `apply --plan`.
    #[arg(long, value_name = "PLAN")]
    out: Option<PathBuf>,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    rollout: RolloutArgs,
}

#[derive(Debug, Args)]
struct RolloutArgs {
    /// Where the rollout ledger (steps, failed revisions, anti-flap history)
    /// is kept; shared with `meridian run`.
    #[arg(long, default_value = ".meridian-state")]
    state_dir: PathBuf,
    /// Change traffic inside a policy's deny window anyway; the reason is
    /// recorded in the plan and the rollout ledger.
    #[arg(long, value_name = "REASON", value_parser = non_empty_reason)]
    override_deny_window: Option<String>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    dir: PathBuf,
    /// Apply this saved plan instead of planning anew; refused when stale.
    #[arg(long, value_name = "PLAN")]
    plan: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    rollout: RolloutArgs,
}

#[derive(Debug, Args)]
struct GitArgs {
    /// Environment variable holding an HTTPS token for the repository.
    #[arg(long, value_name = "NAME")]
    git_token_env: Option<String>,
    /// SSH private key for the repository (default: the SSH agent).
    #[arg(long, value_name = "PATH")]
    git_ssh_key: Option<PathBuf>,
}

impl GitArgs {
    fn auth(&self) -> meridian::source::GitAuth {
        meridian::source::GitAuth {
            token_env: self.git_token_env.clone(),
            ssh_key: self.git_ssh_key.clone(),
        }
    }
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// Repository: a local path or a URL (file://, git://, https://, ssh).
    #[arg(long)]
    repo: String,
    /// Base revision (the pull request's target).
    #[arg(long)]
    base: String,
    /// Head revision (the pull request's tip).
    #[arg(long)]
    head: String,
    /// Desired-state folder inside the repository.
    #[arg(long, default_value = "desired-state")]
    path: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Where remote repositories are mirrored.
    #[arg(long, default_value = ".meridian-state")]
    state_dir: PathBuf,
    #[command(flatten)]
    git: GitArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Repository: a local path or a URL (file://, git://, https://, ssh).
    #[arg(long)]
    repo: String,
    /// Branch to follow.
    #[arg(long, default_value = "main")]
    branch: String,
    /// Desired-state folder inside the repository.
    #[arg(long, default_value = "desired-state")]
    path: String,
    /// Poll interval (with ±10% jitter), e.g. 30s, 5m.
    #[arg(long, default_value = "60s", value_parser = meridian::daemon::parse_duration)]
    interval: std::time::Duration,
    /// Re-observe and correct drift this often even without a new commit.
    #[arg(long, default_value = "10m", value_parser = meridian::daemon::parse_duration)]
    drift_interval: std::time::Duration,
    /// Address for /status, /metrics, /healthz, /readyz and the webhooks.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: std::net::SocketAddr,
    /// Where status and repository mirrors are kept.
    #[arg(long, default_value = ".meridian-state")]
    state_dir: PathBuf,
    /// Environment variable holding the webhook secret.
    #[arg(long, value_name = "NAME", conflicts_with = "webhook_secret_file")]
    webhook_secret_env: Option<String>,
    /// File holding the webhook secret.
    #[arg(long, value_name = "PATH")]
    webhook_secret_file: Option<PathBuf>,
    /// Allow a revision that declares nothing to delete everything meridian manages.
    #[arg(long)]
    allow_empty: bool,
    #[command(flatten)]
    git: GitArgs,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Show the simulated world and its API call counters.
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Change an endpoint group's traffic dial out of band.
    SetDial {
        /// Accelerator name.
        accelerator: String,
        /// AWS region of the endpoint group.
        region: String,
        /// Dial, 0-100.
        #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
        /// Listener name (needed when the accelerator has several).
        #[arg(long)]
        listener: Option<String>,
    },
    /// Change an endpoint's weight out of band.
    SetWeight {
        /// Accelerator name.
        accelerator: String,
        /// AWS region of the endpoint group.
        region: String,
        /// Endpoint id.
        endpoint: String,
        /// Weight, 0-255.
        weight: u8,
        /// Listener name (needed when the accelerator has several).
        #[arg(long)]
        listener: Option<String>,
    },
    /// Mark every endpoint and backend of a region healthy or unhealthy.
    SetHealth {
        /// Region (AWS or GCP).
        region: String,
        /// New health.
        health: Health,
    },
    /// Inject latency, throttling and server errors into every API call.
    Faults(FaultArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ShowFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Health {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Args)]
struct FaultArgs {
    /// Added latency per call, in milliseconds.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Fraction of calls throttled, 0.0-1.0.
    #[arg(long, value_parser = parse_rate)]
    throttle_rate: Option<f64>,
    /// Fraction of calls failing with a server error, 0.0-1.0.
    #[arg(long, value_parser = parse_rate)]
    error_rate: Option<f64>,
    /// Fraction of writes that land but answer with a server error (a lost
    /// response), 0.0-1.0.
    #[arg(long, value_parser = parse_rate)]
    lost_response_rate: Option<f64>,
    /// Make an operation fail permanently (repeatable), e.g. CreateEndpointGroup.
    #[arg(long, value_name = "OPERATION")]
    fail_operation: Vec<String>,
    /// Make a GCP write's long-running operation end in an error instead of
    /// landing (repeatable), e.g. backendServices.patch=RESOURCE_NOT_READY:2.
    #[arg(long, value_name = "OPERATION=CODE[:TIMES]", value_parser = simcli::parse_operation_error)]
    operation_error: Vec<meridian_sim::world::OperationFault>,
    /// Make another writer change a backend of this GCP backend service
    /// (SERVICE or SERVICE/GROUP_SUFFIX) just before the next write to it
    /// lands (repeatable; one race each): the write's fingerprint is stale
    /// and it is answered 412.
    #[arg(long, value_name = "SERVICE[/GROUP]")]
    racing_write: Vec<String>,
    /// How long accelerators stay IN_PROGRESS (and GCP operations RUNNING)
    /// after a change, in milliseconds.
    #[arg(long)]
    deploy_delay_ms: Option<u64>,
    /// Remove every fault first.
    #[arg(long)]
    clear: bool,
}

fn non_empty_reason(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(
            "give the reason for overriding the deny window (it is recorded), e.g. \"incident 4711: drain us-east-1\"".to_owned(),
        );
    }
    Ok(text.trim().to_owned())
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("must be from 0.0 to 1.0, got {rate}"))
    }
}

fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn,meridian=info,meridian_provider=info,meridian_sim=warn",
        // The AWS SDK's own debug lines include request headers (the access
        // key id among them): they stay at info even at -vv.
        1 => "info",
        _ => {
            "debug,aws_smithy_runtime=info,aws_smithy_runtime_api=info,aws_sigv4=info,aws_config=info,aws_smithy_http_client=info,hyper=info,hyper_util=info,rustls=info"
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MERIDIAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// Loads desired state, printing every diagnostic. `None` means invalid.
fn load(dir: &Path) -> Result<Option<DesiredState>> {
    match model::load_dir(dir) {
        Ok(state) => Ok(Some(state)),
        Err(LoadError::Invalid(diagnostics)) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("{} error(s); nothing was applied.", diagnostics.len());
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

fn options(cli: &Cli) -> EngineOptions {
    EngineOptions {
        sim_dir: cli.sim.clone(),
        retry: Default::default(),
    }
}

async fn plan_now(
    cli: &Cli,
    state: &DesiredState,
    rollout_args: Option<&RolloutArgs>,
) -> Result<(Providers, Plan)> {
    let providers = Providers::build(state, &options(cli)).await?;
    let resources = desired::expand(state);
    let observation = engine::observe(&providers, &resources).await;
    let mut plan = engine::make_plan(state, &resources, &observation, None);
    if let Some(args) = rollout_args {
        let ledger = LedgerStore::new(&args.state_dir).load()?;
        rollout::annotate(
            &mut plan,
            state,
            &resources,
            &observation,
            &ledger,
            std::time::SystemTime::now(),
            args.override_deny_window.as_deref(),
        );
    }
    Ok((providers, plan))
}

fn print_violations(plan: &Plan) {
    for violation in &plan.violations {
        eprintln!(
            "blocked by policy: {} ({})",
            violation.message, violation.location
        );
    }
}

async fn validate(dir: &Path) -> Result<u8> {
    let Some(state) = load(dir)? else {
        return Ok(exit::ERROR);
    };
    println!(
        "{}: {} documents in {} files are valid.",
        dir.display(),
        state.document_count(),
        state.files.len()
    );
    for violation in meridian::policy::residency_violations(&state) {
        println!(
            "note: plan and apply would be blocked: {} ({})",
            violation.message, violation.location
        );
    }
    Ok(exit::OK)
}

async fn plan(cli: &Cli, args: &PlanArgs) -> Result<u8> {
    let Some(state) = load(&args.dir)? else {
        return Ok(exit::ERROR);
    };
    let (_, plan) = plan_now(cli, &state, Some(&args.rollout)).await?;
    print!("{}", render::plan(&plan, args.format, style()));
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&plan)?;
        std::fs::write(out, json).with_context(|| format!("writing plan to {}", out.display()))?;
        eprintln!("Saved the plan to {}.", out.display());
    }
    if plan.is_blocked() {
        print_violations(&plan);
        return Ok(exit::BLOCKED);
    }
    if plan.errored {
        return Ok(exit::ERROR);
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        exit::CHANGES
    } else {
        exit::OK
    })
}

struct ConsoleProgress {
    terminal: bool,
}

impl Progress for ConsoleProgress {
    fn started(&self, change: &Change, index: usize, total: usize) {
        if self.terminal {
            println!(
                "[{index}/{total}] {} {} ...",
                change.action.symbol(),
                change.address
            );
        }
    }

    fn finished(&self, outcome: &Outcome, done: usize, total: usize) {
        let change = &outcome.change;
        match &outcome.error {
            None => println!(
                "[{done}/{total}] {} {}: done in {} ms",
                change.action.symbol(),
                change.address,
                outcome.elapsed.as_millis()
            ),
            Some(error) => println!(
                "[{done}/{total}] {} {}: FAILED: {error}",
                change.action.symbol(),
                change.address
            ),
        }
        let _ = std::io::stdout().flush();
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

fn confirm(plan: &Plan) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply {} change(s) without confirmation: stdin is not a terminal; pass --yes",
            plan.changes.len()
        );
    }
    print!(
        "Apply these {} change(s)? Only `yes` is accepted: ",
        plan.changes.len()
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

async fn apply(cli: &Cli, args: &ApplyArgs) -> Result<u8> {
    let Some(state) = load(&args.dir)? else {
        return Ok(exit::ERROR);
    };
    let (providers, fresh) = plan_now(cli, &state, Some(&args.rollout)).await?;
    let plan = match &args.plan {
        None => fresh,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading plan {}", path.display()))?;
            let saved: Plan = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a meridian plan", path.display()))?;
            if saved.format_version != meridian::plan::FORMAT_VERSION {
                eprintln!(
                    "error: {} has plan format {}, this meridian reads format {}",
                    path.display(),
                    saved.format_version,
                    meridian::plan::FORMAT_VERSION
                );
                return Ok(exit::ERROR);
            }
            if saved.source.digest != state.digest {
                eprintln!(
                    "error: the saved plan is stale: desired state in {} changed since the plan was made (plan {}, now {}). Nothing was applied; run `meridian plan` again.",
                    args.dir.display(),
                    short(&saved.source.digest),
                    short(&state.digest)
                );
                return Ok(exit::ERROR);
            }
            if saved.observed_fingerprint != fresh.observed_fingerprint {
                eprintln!(
                    "error: the saved plan is stale: the live world changed since the plan was made (observed {}, now {}). Nothing was applied; run `meridian plan` again.",
                    short(&saved.observed_fingerprint),
                    short(&fresh.observed_fingerprint)
                );
                return Ok(exit::ERROR);
            }
            // Same desired state and same live world give the same plan. A saved
            // plan whose changes differ was edited (or made by another version):
            // only what meridian itself computes is ever applied.
            if saved.overridden != fresh.overridden {
                eprintln!(
                    "error: the saved plan is stale: a break-glass override was set, cleared or has expired since the plan was made, so different changes are held back now. Nothing was applied; run `meridian plan` again."
                );
                return Ok(exit::ERROR);
            }
            if saved.changes != fresh.changes || saved.violations != fresh.violations {
                eprintln!(
                    "error: the saved plan's changes differ from what meridian computes for the same desired state and live world (was the file edited, or made by another meridian version?). Nothing was applied; run `meridian plan` again."
                );
                return Ok(exit::ERROR);
            }
            fresh
        }
    };
    let ledger = LedgerStore::new(&args.rollout.state_dir).load()?;
    if let Some(failed) = ledger.failed.get(&state.digest) {
        eprintln!(
            "error: this desired state failed its gates at {}: {}. It is not applied again until it changes (a new commit) or `meridian retry`.",
            failed.at, failed.reason
        );
        return Ok(exit::ERROR);
    }
    let mut plan = plan;
    let running = ledger.current.as_ref().is_some_and(|r| {
        r.revision == state.digest
            && matches!(
                r.status,
                rollout::RolloutStatus::InProgress | rollout::RolloutStatus::RollingBack
            )
    });
    if running {
        // The invariants were checked when this rollout started; from here
        // its gates govern and roll it back if health drops.
        plan.violations
            .retain(|v| !rollout::is_rollout_violation(v));
    }
    if plan.is_blocked() {
        print!("{}", render::plan(&plan, Format::Text, style()));
        print_violations(&plan);
        return Ok(exit::BLOCKED);
    }
    if plan.errored {
        print!("{}", render::plan(&plan, Format::Text, style()));
        eprintln!(
            "error: the live world was not fully observed or holds conflicting objects; nothing was applied."
        );
        return Ok(exit::ERROR);
    }
    let in_progress = ledger.current.as_ref().is_some_and(|r| {
        r.revision == state.digest
            && matches!(
                r.status,
                rollout::RolloutStatus::InProgress | rollout::RolloutStatus::RollingBack
            )
    });
    if plan.is_empty() && !in_progress {
        match render::held_back_line(&plan) {
            Some(held) => println!("{held}\nNothing else to apply."),
            None => println!("No changes. The live world matches the desired state."),
        }
        return Ok(exit::OK);
    }
    print!("{}", render::plan(&plan, Format::Text, style()));
    if !args.yes && !plan.is_empty() && !confirm(&plan)? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(exit::ERROR);
    }
    let store = LedgerStore::new(&args.rollout.state_dir);
    let revision = state.digest.clone();
    let progress = ConsoleProgress {
        terminal: std::io::stdout().is_terminal(),
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "Stopping after the change(s) in flight; run `meridian apply` again to continue."
                );
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    let options = rollout::RunOptions {
        wait: true,
        deny_window_override: args.rollout.override_deny_window.clone(),
        max_conflicts: if args.plan.is_some() { 0 } else { 3 },
    };
    let resources = desired::expand(&state);
    let (end, outcomes) = rollout::run(
        &state,
        &resources,
        &revision,
        &providers,
        &store,
        &progress,
        &ConsoleRollout,
        &stop,
        &options,
    )
    .await?;
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let applied = outcomes.len() - failed;
    let calls = providers.calls();
    let (reads, writes) = calls.values().flatten().fold((0, 0), |(r, w), c| {
        if c.write {
            (r, w + c.ok + c.failed)
        } else {
            (r + c.ok + c.failed, w)
        }
    });
    let steps = store
        .load()?
        .current
        .filter(|r| r.revision == revision)
        .map(|r| r.steps.len())
        .unwrap_or(0);
    println!(
        "Applied {applied} of {} change(s){}; {} retries after transient errors, {} waits; {reads} read and {writes} write API calls.",
        outcomes.len(),
        if steps > 1 {
            format!(" in {steps} steps")
        } else {
            String::new()
        },
        providers.stats.retries(),
        providers.stats.waits()
    );
    if let Some(held) = render::held_back_line(&plan) {
        println!("{held}");
    }
    match end {
        rollout::RunEnd::Done => Ok(exit::OK),
        rollout::RunEnd::Failed(reason) => {
            eprintln!("error: the rollout failed: {reason}");
            Ok(exit::ERROR)
        }
        rollout::RunEnd::ApplyFailed(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            if args.plan.is_some()
                && outcomes
                    .iter()
                    .any(|o| o.error.as_ref().is_some_and(|e| e.is_conflict()))
            {
                eprintln!(
                    "error: the live world changed after the saved plan was checked; nothing was overwritten. Run `meridian plan` again."
                );
            }
            eprintln!(
                "{} change(s) failed. What landed stays; run `meridian apply` again to continue from live state.",
                errors.len()
            );
            Ok(exit::ERROR)
        }
        rollout::RunEnd::Interrupted => {
            eprintln!(
                "Interrupted between steps; the rollout's position is saved in {}: run `meridian apply` again to continue.",
                args.rollout.state_dir.display()
            );
            Ok(exit::ERROR)
        }
        rollout::RunEnd::Waiting(_, reason) => {
            eprintln!(
                "Paused: {reason}. The rollout's position is saved; run `meridian apply` again once the window has closed (or override it with --override-deny-window \"<reason>\")."
            );
            Ok(exit::ERROR)
        }
    }
}

struct ConsoleRollout;

impl rollout::RolloutEvents for ConsoleRollout {
    fn step(&self, number: usize, rollback: bool, plan: &Plan) {
        let moves: Vec<String> = plan
            .changes
            .iter()
            .flat_map(|c| {
                c.fields
                    .iter()
                    .filter(|f| {
                        matches!(f.path.as_str(), "trafficDial" | "weight" | "capacityScaler")
                    })
                    .map(move |f| {
                        format!(
                            "{} {} {} → {}",
                            c.address,
                            f.path,
                            render::show_value(f.before.as_ref()),
                            render::show_value(f.after.as_ref())
                        )
                    })
            })
            .collect();
        println!(
            "{} {number}: {} change(s){}{}",
            if rollback { "Rollback step" } else { "Step" },
            plan.changes.len(),
            if moves.is_empty() { "" } else { ": " },
            moves.join(", ")
        );
        let _ = std::io::stdout().flush();
    }

    fn waiting(&self, reason: &str) {
        println!("… {reason}");
        let _ = std::io::stdout().flush();
    }
}

async fn drift(cli: &Cli, dir: &Path, format: Format) -> Result<u8> {
    let Some(state) = load(dir)? else {
        return Ok(exit::ERROR);
    };
    let (_, plan) = plan_now(cli, &state, None).await?;
    print!("{}", render::drift(&plan, format, style()));
    if plan.errored {
        return Ok(exit::ERROR);
    }
    Ok(if plan.is_empty() {
        exit::OK
    } else {
        exit::CHANGES
    })
}

#[derive(Debug, Subcommand)]
enum OverrideCommand {
    /// Mark a live GlobalAccelerator (with everything in it) or BackendService
    /// (with its backends) as overridden until a time: its traffic changes
    /// (dials, weights, scalers, endpoints, deletes) are reported by `drift`
    /// and held back by `apply` and `meridian run` until then.
    Set {
        /// The object: a name (`api`), `Kind/name` (`GlobalAccelerator/api`,
        /// `BackendService/app-backend`), an address (`GlobalAccelerator[api]`;
        /// anything inside an accelerator means the accelerator) or a cloud id.
        target: String,
        /// When the override ends: an RFC 3339 time (2030-01-01T00:00:00Z) or
        /// a duration from now (30m, 2h, 1d).
        #[arg(long, value_name = "TIME|DURATION")]
        until: String,
        /// Desired-state directory, for its Provider documents.
        #[arg(long, default_value = "desired-state")]
        dir: PathBuf,
    },
    /// Remove the override marker: the next apply or reconcile reverts the
    /// traffic changes made by hand.
    Clear {
        /// The object, named as for `override set`.
        target: String,
        /// Desired-state directory, for its Provider documents.
        #[arg(long, default_value = "desired-state")]
        dir: PathBuf,
    },
}

/// Who runs this command, for the record printed by `override set|clear`.
fn operator() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "an unknown user".to_owned())
}

async fn override_command(cli: &Cli, command: &OverrideCommand) -> Result<u8> {
    use meridian::overrides;
    let (target, until, dir) = match command {
        OverrideCommand::Set { target, until, dir } => (target, Some(until), dir),
        OverrideCommand::Clear { target, dir } => (target, None, dir),
    };
    let Some(state) = load(dir)? else {
        return Ok(exit::ERROR);
    };
    let until = match until.map(|t| overrides::parse_until(t, std::time::SystemTime::now())) {
        None => None,
        Some(Ok(until)) => Some(until),
        Some(Err(why)) => {
            eprintln!("error: --until: {why}");
            return Ok(exit::ERROR);
        }
    };
    let providers = Providers::build(&state, &options(cli)).await?;
    let resources = desired::expand(&state);
    let observation = engine::observe(&providers, &resources).await;
    let target = match overrides::resolve(target, &observation.resources) {
        Ok(target) => target,
        Err(why) => {
            eprintln!("error: {why}");
            for gap in &observation.gaps {
                eprintln!(
                    "note: {} of provider `{}` could not be observed: {}",
                    gap.family, gap.provider, gap.error
                );
            }
            return Ok(exit::ERROR);
        }
    };
    if let Some(inside) = &target.widened_from {
        println!(
            "note: {inside} is inside {}; an override covers the whole of it.",
            target.address
        );
    }
    let current = observation
        .overrides
        .iter()
        .find(|(provider, o)| *provider == target.provider && o.address == target.address)
        .map(|(_, o)| o.until.clone());
    let (who, when) = (operator(), meridian::clock::now());
    match (&until, &current) {
        (None, None) => {
            println!(
                "{} (provider `{}`) carries no override; nothing to clear.",
                target.address, target.provider
            );
            return Ok(exit::OK);
        }
        (None, Some(was)) => {
            providers
                .set_override(&target.provider, &target.address, None)
                .await?;
            tracing::info!(address = %target.address, provider = %target.provider, was = %was, by = %who, "break-glass override cleared");
            println!(
                "Override cleared: {} (provider `{}`) was held until {was}; the next apply or reconcile reverts the traffic changes made by hand.\nCleared by {who} at {when}.",
                target.address, target.provider
            );
        }
        (Some(until), was) => {
            providers
                .set_override(&target.provider, &target.address, Some(until.clone()))
                .await?;
            tracing::info!(address = %target.address, provider = %target.provider, until = %until, by = %who, "break-glass override set");
            println!(
                "Override set: {} (provider `{}`) is held until {until}{}; until then apply and `meridian run` do not revert its traffic changes (`meridian drift` lists them).\nSet by {who} at {when}.",
                target.address,
                target.provider,
                was.as_ref()
                    .map(|was| format!(", replacing the override until {was}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(exit::OK)
}

async fn sim(cli: &Cli, command: &SimCommand) -> Result<u8> {
    let Some(dir) = &cli.sim else {
        bail!(
            "`meridian sim` needs the simulated cloud's directory: pass --sim DIR or set MERIDIAN_SIM"
        );
    };
    let cloud = SimCloud::new(SimStore::open(dir)?);
    let message = match command {
        SimCommand::Show { format } => {
            let world = cloud.store().read()?;
            match format {
                ShowFormat::Text => print!("{}", simcli::show_text(&world)),
                ShowFormat::Json => print!("{}", simcli::show_json(&world)),
            }
            return Ok(exit::OK);
        }
        SimCommand::SetDial {
            accelerator,
            region,
            percent,
            listener,
        } => simcli::set_dial(&cloud, accelerator, listener.as_deref(), region, *percent).await?,
        SimCommand::SetWeight {
            accelerator,
            region,
            endpoint,
            weight,
            listener,
        } => {
            simcli::set_weight(
                &cloud,
                accelerator,
                listener.as_deref(),
                region,
                endpoint,
                *weight,
            )
            .await?
        }
        SimCommand::SetHealth { region, health } => {
            if !meridian::model::regions::is_aws(region)
                && !meridian::model::regions::is_gcp(region)
            {
                bail!(
                    "unknown region `{region}`: give an AWS region (e.g. eu-central-1) or a Google Cloud region (e.g. europe-west1)"
                );
            }
            simcli::set_health(&cloud, region, matches!(health, Health::Healthy))?
        }
        SimCommand::Faults(args) => {
            for operation in &args.fail_operation {
                if !meridian_sim::cloud::OPERATIONS.contains(&operation.as_str()) {
                    bail!(
                        "unknown operation `{operation}`; the simulated cloud serves: {}",
                        meridian_sim::cloud::OPERATIONS.join(", ")
                    );
                }
            }
            let settings = cloud.store().transact(|world| {
                let faults = &mut world.settings.faults;
                if args.clear {
                    *faults = Faults::default();
                }
                if let Some(v) = args.latency_ms {
                    faults.latency_ms = v
                }
                if let Some(v) = args.throttle_rate {
                    faults.throttle_rate = v
                }
                if let Some(v) = args.lost_response_rate {
                    faults.lost_response_rate = v
                }
                if let Some(v) = args.error_rate {
                    faults.error_rate = v
                }
                faults
                    .fail_operations
                    .extend(args.fail_operation.iter().cloned());
                faults
                    .operation_errors
                    .extend(args.operation_error.iter().cloned());
                faults
                    .racing_writes
                    .extend(args.racing_write.iter().cloned());
                if let Some(v) = args.deploy_delay_ms {
                    world.settings.deploy_delay_ms = v
                }
                world.settings.clone()
            })?;
            let f = &settings.faults;
            format!(
                "faults: latency {} ms, throttle rate {}, error rate {}, lost-response rate {}, failing operations [{}], operation errors [{}]; deploy delay {} ms",
                f.latency_ms,
                f.throttle_rate,
                f.error_rate,
                f.lost_response_rate,
                f.fail_operations.join(", "),
                simcli::operation_errors_text(&f.operation_errors),
                settings.deploy_delay_ms
            )
        }
    };
    println!("{message}");
    Ok(exit::OK)
}

async fn preview(cli: &Cli, args: &DiffArgs) -> Result<u8> {
    use meridian::source::{RepoSource, SourceError};
    let source = RepoSource::open(&args.repo, &args.state_dir, args.git.auth())?;
    source.fetch_all()?;
    let base = source.resolve(&args.base)?;
    let head = source.resolve(&args.head)?;
    let base_snapshot = match source.snapshot(base, &args.path, true) {
        Ok(snapshot) => snapshot,
        Err(SourceError::PathMissing { .. }) => meridian::source::Snapshot {
            revision: base.to_string(),
            path: args.path.clone(),
            files: Vec::new(),
            notes: Vec::new(),
            digest: String::new(),
        },
        Err(error) => return Err(error.into()),
    };
    let mut preview = meridian::preview::Preview {
        format_version: meridian::plan::FORMAT_VERSION,
        repository: source.display().to_owned(),
        base: base.to_string(),
        head: head.to_string(),
        path: args.path.clone(),
        files: Vec::new(),
        notes: Vec::new(),
        errors: Vec::new(),
        plan: None,
        traffic: Vec::new(),
    };
    let head_snapshot = match source.snapshot(head, &args.path, false) {
        Ok(snapshot) => snapshot,
        Err(
            error @ (SourceError::Empty { .. }
            | SourceError::PathMissing { .. }
            | SourceError::NotText { .. }),
        ) => {
            preview.errors.push(error.to_string());
            print!("{}", meridian::preview::render(&preview, args.format));
            return Ok(exit::ERROR);
        }
        Err(error) => return Err(error.into()),
    };
    preview.files = meridian::preview::file_changes(&base_snapshot, &head_snapshot);
    preview.notes = head_snapshot.notes.clone();
    let state = match model::load(&head_snapshot.files) {
        Ok(state) => state,
        Err(LoadError::Invalid(diagnostics)) => {
            preview.errors = diagnostics.iter().map(ToString::to_string).collect();
            print!("{}", meridian::preview::render(&preview, args.format));
            return Ok(exit::ERROR);
        }
        Err(error) => return Err(error.into()),
    };
    let providers = Providers::build(&state, &options(cli)).await?;
    let resources = desired::expand(&state);
    // The preview's traffic shares need backend health.
    let observation = engine::observe_with(&providers, &resources, true).await;
    let mut plan = engine::make_plan(&state, &resources, &observation, Some(head.to_string()));
    // The schedule and the invariants, as `plan` shows them (the ledger of
    // this machine's state directory, if any, for the anti-flap history).
    let ledger = LedgerStore::new(&args.state_dir).load().unwrap_or_default();
    rollout::annotate(
        &mut plan,
        &state,
        &resources,
        &observation,
        &ledger,
        std::time::SystemTime::now(),
        None,
    );
    preview.traffic = meridian::preview::traffic_impact(&observation, &resources);
    let code = if plan.is_blocked() {
        exit::BLOCKED
    } else if plan.errored {
        exit::ERROR
    } else if plan.is_empty() {
        exit::OK
    } else {
        exit::CHANGES
    };
    preview.plan = Some(plan);
    print!("{}", meridian::preview::render(&preview, args.format));
    Ok(code)
}

async fn whatif(cli: &Cli, args: &WhatifArgs) -> Result<u8> {
    let Some(state) = load(&args.dir)? else {
        return Ok(exit::ERROR);
    };
    let down = match meridian::whatif::check_regions(&state, &args.region_down) {
        Ok(down) => down,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(exit::ERROR);
        }
    };
    // Live health only from the simulated cloud: without --sim the
    // simulation needs no cloud at all.
    let health = match &cli.sim {
        Some(_) => {
            let providers = Providers::build(&state, &options(cli)).await?;
            let resources = desired::expand(&state);
            let observation = engine::observe_with(&providers, &resources, true).await;
            if observation.resources.is_empty() {
                eprintln!(
                    "warning: the simulated cloud holds none of these objects yet (has `apply` run?); every endpoint is assumed healthy"
                );
            }
            for gap in &observation.gaps {
                eprintln!(
                    "warning: live health of {} could not be observed ({:?}); assumed healthy",
                    gap.provider, gap.family
                );
            }
            Some(
                observation
                    .resources
                    .into_iter()
                    .map(|(_, o)| (o.address, o.health))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
        }
        None => None,
    };
    let report = meridian::whatif::simulate(
        &state,
        &args.dir.display().to_string(),
        &down,
        health.as_ref(),
    );
    print!("{}", meridian::whatif::render(&report, args.format));
    Ok(report.exit_code())
}

fn failover(args: &FailoverArgs) -> Result<u8> {
    use meridian::failover::{self, FailoverError};
    let files = model::read_dir(&args.dir)?;
    let state = match model::load(&files) {
        Ok(state) => state,
        Err(LoadError::Invalid(diagnostics)) => {
            for diagnostic in &diagnostics {
                eprintln!("{diagnostic}");
            }
            eprintln!("{} error(s); nothing was written.", diagnostics.len());
            return Ok(exit::ERROR);
        }
        Err(error) => return Err(error.into()),
    };
    let drain = match failover::drain(&files, &state, &args.from, args.to.as_deref()) {
        Ok(drain) => drain,
        Err(FailoverError::Refused(reasons)) => {
            for reason in &reasons {
                eprintln!("refused: {reason}");
            }
            eprintln!("Nothing was written.");
            return Ok(exit::BLOCKED);
        }
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(exit::ERROR);
        }
    };
    for warning in &drain.warnings {
        eprintln!("warning: {warning}");
    }
    if drain.files.is_empty() {
        eprintln!(
            "Nothing to change: every endpoint group and backend in {} is already drained.",
            drain.from
        );
        return Ok(exit::OK);
    }
    match (&args.branch, args.output) {
        (Some(branch), _) => match failover::commit_branch(&args.dir, branch, &drain) {
            Ok(commit) => {
                println!(
                    "{}.\nCommitted {} on the new branch {branch}; the current branch and the working tree are unchanged.",
                    drain.summary(),
                    &commit.to_string()[..12]
                );
                Ok(exit::OK)
            }
            Err(error) => {
                eprintln!("error: {error}");
                Ok(exit::ERROR)
            }
        },
        (None, Some(FailoverOutput::Patch) | None) => {
            let root = failover::patch_root(&args.dir);
            print!(
                "{}",
                failover::patch(&drain, |path| failover::relative_to(&root, path))
            );
            eprintln!(
                "{}. Apply with `git apply` in {}.",
                drain.summary(),
                root.display()
            );
            Ok(exit::OK)
        }
    }
}

async fn daemon(cli: &Cli, args: &RunArgs) -> Result<u8> {
    let secret = match (&args.webhook_secret_env, &args.webhook_secret_file) {
        (Some(name), _) => {
            let value = std::env::var(name)
                .with_context(|| format!("the webhook secret variable {name} is not set"))?;
            Some(
                meridian::webhook::Secret::new(value.as_bytes())
                    .with_context(|| format!("the webhook secret in {name} is empty"))?,
            )
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the webhook secret file {}", path.display()))?;
            Some(
                meridian::webhook::Secret::new(&bytes).with_context(|| {
                    format!("the webhook secret file {} is empty", path.display())
                })?,
            )
        }
        (None, None) => None,
    };
    let config = meridian::daemon::DaemonConfig {
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        path: args.path.clone(),
        interval: args.interval,
        drift_interval: args.drift_interval,
        listen: args.listen,
        state_dir: args.state_dir.clone(),
        webhook_secret: secret,
        allow_empty: args.allow_empty,
        auth: args.git.auth(),
        engine: options(cli),
    };
    meridian::daemon::run(config).await?;
    Ok(exit::OK)
}

async fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Diff(args) => preview(cli, args).await,
        Command::Sandbox { listen } => {
            let dir = cli
                .sim
                .clone()
                .unwrap_or_else(|| PathBuf::from(".meridian-sim"));
            let cloud = SimCloud::new(SimStore::open(&dir)?);
            meridian_sandbox::serve(cloud, *listen)
                .await
                .with_context(|| format!("serving the sandbox on {listen}"))?;
            Ok(exit::OK)
        }
        Command::Run(args) => daemon(cli, args).await,
        Command::Status { state_dir, format } => {
            let status = meridian::status::Status::load(state_dir)?;
            let ledger_path = state_dir.join("rollout.json");
            let ledger = if ledger_path.exists() {
                Some(LedgerStore::new(state_dir).load()?)
            } else {
                None
            };
            if status.is_none() && ledger.is_none() {
                bail!(
                    "no status in {}: has `meridian run` or `meridian apply` run with --state-dir {} yet?",
                    state_dir.display(),
                    state_dir.display()
                );
            }
            match format {
                ShowFormat::Text => {
                    if let Some(status) = &status {
                        print!("{}", status.to_text());
                    }
                    if let Some(ledger) = &ledger {
                        print!("{}", rollout::ledger_text(ledger));
                    }
                }
                ShowFormat::Json => {
                    let mut value = match &status {
                        Some(status) => serde_json::to_value(status)?,
                        None => serde_json::json!({}),
                    };
                    if let (Some(object), Some(ledger)) = (value.as_object_mut(), &ledger) {
                        object.insert("rollout".to_owned(), serde_json::to_value(ledger)?);
                    }
                    println!("{}", serde_json::to_string_pretty(&value)?);
                }
            }
            Ok(exit::OK)
        }
        Command::Retry {
            state_dir,
            revision,
        } => {
            let store = LedgerStore::new(state_dir);
            let mut ledger = store.load()?;
            let cleared: Vec<String> = match revision {
                Some(revision) => ledger
                    .failed
                    .keys()
                    .filter(|r| r.starts_with(revision.as_str()))
                    .cloned()
                    .collect(),
                None => ledger.failed.keys().cloned().collect(),
            };
            if cleared.is_empty() {
                println!("No failed revision to retry in {}.", state_dir.display());
                return Ok(exit::OK);
            }
            for revision in &cleared {
                ledger.failed.remove(revision);
                if ledger
                    .current
                    .as_ref()
                    .is_some_and(|c| &c.revision == revision)
                {
                    ledger.current = None;
                }
                println!(
                    "Cleared the failure of revision {revision}; the next apply (or reconcile) starts its rollout afresh from live state."
                );
            }
            store.save(&ledger)?;
            Ok(exit::OK)
        }
        Command::Validate { dir } => validate(dir).await,
        Command::Plan(args) => plan(cli, args).await,
        Command::Apply(args) => apply(cli, args).await,
        Command::Drift { dir, format } => drift(cli, dir, *format).await,
        Command::Sim(command) => sim(cli, command).await,
        Command::Override(command) => override_command(cli, command).await,
        Command::Whatif(args) => whatif(cli, args).await,
        Command::Failover(args) => failover(args),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&model::schema::editor_schema())?
            );
            Ok(exit::OK)
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit 1 (error), never clap's default 2, which in
    // meridian's contract means "changes pending" or "drift found".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            let code = match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::ERROR,
            };
            return ExitCode::from(code);
        }
    };
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
