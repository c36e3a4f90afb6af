//! The command line: arguments, one file per command, and the dispatch.
//!
//! Each command parses its arguments, calls the library, prints human
//! output to stdout (logs go to stderr) and returns an exit code from
//! [`meridian::exit`]. No reconcile logic lives here.

pub mod adopt;
pub mod apply;
pub mod audit;
pub mod diff;
pub mod drift;
pub mod failover;
pub mod overrides;
pub mod plan;
pub mod run;
pub mod sim;
pub mod validate;
pub mod whatif;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use meridian::desired;
use meridian::exit;
use meridian::model::{self, DesiredState, LoadError};
use meridian::observe;
use meridian::plan::Plan;
use meridian::plan::render::{Format, Style};
use meridian::providers::{ProviderOptions, Providers};
use meridian::rollout::{self, LedgerStore};
use meridian_sim::{SimCloud, SimStore};

/// GitOps reconciler for multi-region global traffic: AWS Global Accelerator,
/// GCP global load balancing and Transit Gateway peering, kept in Git and
/// applied step by step.
#[derive(Debug, Parser)]
#[command(name = "meridian", version, about, long_about = None)]
pub struct Cli {
    /// Run every provider against the embedded simulated cloud persisted in DIR.
    #[arg(long, global = true, env = "MERIDIAN_SIM", value_name = "DIR")]
    pub sim: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check desired state offline; exit 0 when valid, 1 when not.
    Validate {
        /// Desired-state directory.
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
    },
    /// Show what apply would change.
    Plan(plan::PlanArgs),
    /// Make the live world match desired state.
    Apply(apply::ApplyArgs),
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
    Diff(diff::DiffArgs),
    /// Watch a Git branch and keep the live world equal to it.
    Run(Box<run::RunArgs>),
    /// Serve the AWS Global Accelerator API (awsJson1_1, at POST /), the EC2
    /// Query API for Transit Gateway (form-encoded POST /) and the Compute
    /// Engine REST API for global load balancing (at /compute/v1/)
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
    Sim(sim::SimCommand),
    /// Break-glass overrides: keep apply and `meridian run` from reverting
    /// traffic changes made by hand to an accelerator or backend service
    /// until a time.
    #[command(subcommand)]
    Override(overrides::OverrideCommand),
    /// Write desired-state documents for live objects meridian does not
    /// own (pinned by `meridian.dev/external-id`): `plan` then adopts them.
    Import(adopt::ImportArgs),
    /// Stop managing an object without touching its configuration: remove
    /// meridian's ownership marker. Removing its document afterwards
    /// deletes nothing.
    Release(adopt::ReleaseArgs),
    /// List the audit trail: every write call meridian made, with its
    /// revision, author and signer, who triggered it, each field before →
    /// after, and the cloud's request id.
    Audit(audit::AuditArgs),
    /// Print the JSON Schema of desired-state documents (for editors).
    Schema,
    /// Simulate a region outage from desired state: each region's share of
    /// new traffic, headroom, failover paths, residency and serving regions
    /// during the outage. Exit 3 when a policy is violated, 2 when declared
    /// capacity runs short, 0 when the outage is absorbed.
    Whatif(whatif::WhatifArgs),
    /// Write the desired-state change that drains a region (dials and
    /// capacity scalers to 0), as a patch or a commit on a new branch. Never
    /// touches the live cloud; refuses unsafe drains with exit 3.
    Failover(failover::FailoverArgs),
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// Where the rollout ledger (steps, failed revisions, anti-flap history)
    /// is kept; shared with `meridian run`.
    #[arg(long, default_value = ".meridian-state")]
    pub state_dir: PathBuf,
    /// Change traffic inside a policy's deny window anyway; the reason is
    /// recorded in the plan and the rollout ledger.
    #[arg(long, value_name = "REASON", value_parser = non_empty_reason)]
    pub override_deny_window: Option<String>,
}

#[derive(Debug, Args)]
pub struct GitArgs {
    /// Environment variable holding an HTTPS token for the repository.
    #[arg(long, value_name = "NAME")]
    pub git_token_env: Option<String>,
    /// SSH private key for the repository (default: the SSH agent).
    #[arg(long, value_name = "PATH")]
    pub git_ssh_key: Option<PathBuf>,
}

impl GitArgs {
    fn auth(&self) -> meridian::source::GitAuth {
        meridian::source::GitAuth {
            token_env: self.git_token_env.clone(),
            ssh_key: self.git_ssh_key.clone(),
        }
    }
}

/// Which commits must be signed by a trusted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyWhich {
    /// The revision applied (the branch head).
    Head,
    /// Every commit since the last applied revision.
    All,
}

#[derive(Debug, Args)]
pub struct SignatureArgs {
    /// Apply only revisions signed by a trusted key: the head (`head`, the
    /// default) or every commit since the last applied revision (`all`).
    /// Needs --allowed-signers or --openpgp-keyring.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "head", value_name = "WHICH")]
    pub verify_signatures: Option<VerifyWhich>,
    /// SSH keys trusted to sign commits, in git's allowed_signers format
    /// (gpg.ssh.allowedSignersFile).
    #[arg(long, value_name = "FILE", requires = "verify_signatures")]
    pub allowed_signers: Option<PathBuf>,
    /// OpenPGP certificates trusted to sign commits (an armored or binary
    /// keyring, e.g. from `gpg --export --armor`).
    #[arg(long, value_name = "FILE", requires = "verify_signatures")]
    pub openpgp_keyring: Option<PathBuf>,
}

impl SignatureArgs {
    /// The signature policy asked for, with its keys loaded.
    pub fn policy(&self) -> Result<Option<meridian::source::SignaturePolicy>> {
        let Some(which) = self.verify_signatures else {
            return Ok(None);
        };
        if self.allowed_signers.is_none() && self.openpgp_keyring.is_none() {
            anyhow::bail!(
                "--verify-signatures needs trusted keys: --allowed-signers FILE (SSH) and/or --openpgp-keyring FILE (OpenPGP)"
            );
        }
        let trust = meridian::source::signature::Trust::load(
            self.allowed_signers.as_deref(),
            self.openpgp_keyring.as_deref(),
        )?;
        Ok(Some(meridian::source::SignaturePolicy {
            trust: std::sync::Arc::new(trust),
            mode: match which {
                VerifyWhich::Head => meridian::source::VerifyMode::Head,
                VerifyWhich::All => meridian::source::VerifyMode::All,
            },
        }))
    }
}

/// Where a command's audit lines go: the replicas' etcd with `--election`,
/// the state directory's `audit.jsonl` otherwise.
pub fn audit_sink(
    state_dir: &Path,
    election: Option<&meridian::daemon::election::EtcdTarget>,
) -> std::sync::Arc<dyn meridian::audit::AuditSink> {
    match election {
        Some(target) => std::sync::Arc::new(meridian::daemon::election::EtcdAudit(
            meridian::daemon::election::Election::new(
                target.clone(),
                meridian::audit::local_actor(),
                meridian::daemon::election::Timings::default(),
            ),
        )),
        None => std::sync::Arc::new(meridian::audit::FileSink::new(state_dir)),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    Text,
    Json,
}

/// `--sim` on a command that never talks to a cloud would do nothing: say
/// so instead of ignoring it. (`MERIDIAN_SIM` in the environment is for the
/// commands that use it and is not an error elsewhere.)
pub fn check_sim_flag(cli: &Cli, matches: &clap::ArgMatches) -> Result<(), String> {
    if matches.value_source("sim") != Some(clap::parser::ValueSource::CommandLine) {
        return Ok(());
    }
    let command = match &cli.command {
        Command::Validate { .. } => "validate",
        Command::Status { .. } => "status",
        Command::Retry { .. } => "retry",
        Command::Audit(_) => "audit",
        Command::Schema => "schema",
        Command::Failover(_) => "failover",
        _ => return Ok(()),
    };
    Err(format!(
        "--sim has no effect on `meridian {command}`, which never talks to a cloud; remove it"
    ))
}

pub fn non_empty_reason(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err(
            "give the reason for overriding the deny window (it is recorded), e.g. \"incident 4711: drain us-east-1\"".to_owned(),
        );
    }
    Ok(text.trim().to_owned())
}

/// Crates whose debug and trace events carry credentials or request
/// headers (the AWS SDK prints the resolved identity with the access key
/// id; HTTP clients print Authorization headers). They never log below
/// info, whatever -v or MERIDIAN_LOG ask for.
const CREDENTIAL_BEARING: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_types",
    "aws_sigv4",
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "google_cloud_auth",
    "google_cloud_gax",
    "google_cloud_gax_internal",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
];

pub fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn,meridian=info,meridian_provider=info,meridian_sim=warn",
        1 => "info",
        _ => "debug",
    };
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::{FilterExt as _, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MERIDIAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second filter both must pass: no directive of MERIDIAN_LOG (a more
    // specific target, a span) can lift these crates below info.
    let cap = CREDENTIAL_BEARING.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::INFO),
    );
    let filter = filter.and(cap);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    match cli.log_format {
        LogFormat::Human => tracing_subscriber::registry()
            .with(
                layer
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().with_filter(filter))
            .init(),
    }
}

pub fn style() -> Style {
    Style {
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// Loads desired state, printing every diagnostic. `None` means invalid.
pub fn load(dir: &Path) -> Result<Option<DesiredState>> {
    report(model::load_dir(dir))
}

/// Prints a load's diagnostics. `None` means invalid.
pub fn report(loaded: Result<DesiredState, LoadError>) -> Result<Option<DesiredState>> {
    match loaded {
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

pub fn options(cli: &Cli) -> ProviderOptions {
    ProviderOptions {
        sim_dir: cli.sim.clone(),
        retry: Default::default(),
    }
}

pub async fn plan_now(
    cli: &Cli,
    state: &DesiredState,
    rollout_args: Option<&RolloutArgs>,
) -> Result<(Providers, Plan)> {
    let Some(args) = rollout_args else {
        // Drift: the plan alone, without what progressive delivery adds.
        let providers = Providers::build(state, &options(cli)).await?;
        let resources = desired::expand(state);
        let observation = observe::observe(&providers, &resources).await;
        let plan = meridian::plan::make(state, &resources, &observation, None);
        return Ok((providers, plan));
    };
    let prepared = meridian::reconcile::prepare(
        state,
        &options(cli),
        &LedgerStore::new(&args.state_dir),
        &state.digest,
        None,
        meridian::reconcile::Checks::Blocking {
            deny_window_override: args.override_deny_window.as_deref(),
        },
        meridian::reconcile::Intent::Show,
    )
    .await?;
    Ok((prepared.providers, prepared.plan))
}

pub fn print_violations(plan: &Plan) {
    for violation in &plan.violations {
        eprintln!(
            "blocked by policy: {} ({})",
            violation.message, violation.location
        );
    }
}

pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

pub async fn run(cli: &Cli) -> Result<u8> {
    match &cli.command {
        Command::Diff(args) => diff::preview(cli, args).await,
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
        Command::Run(args) => run::daemon(cli, args).await,
        Command::Status { state_dir, format } => {
            let status = meridian::daemon::status::Status::load(state_dir)?;
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
        Command::Validate { dir } => validate::validate(dir).await,
        Command::Plan(args) => plan::plan(cli, args).await,
        Command::Apply(args) => apply::apply(cli, args).await,
        Command::Drift { dir, format } => drift::drift(cli, dir, *format).await,
        Command::Sim(command) => sim::sim(cli, command).await,
        Command::Override(command) => overrides::override_command(cli, command).await,
        Command::Whatif(args) => whatif::whatif(cli, args).await,
        Command::Failover(args) => failover::failover(args),
        Command::Import(args) => adopt::import(cli, args).await,
        Command::Release(args) => adopt::release(cli, args).await,
        Command::Audit(args) => audit::audit(args).await,
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&model::schema::editor_schema())?
            );
            Ok(exit::OK)
        }
    }
}
