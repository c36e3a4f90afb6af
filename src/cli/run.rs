//! `meridian run`: start the reconciler daemon.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use meridian::exit;

use super::*;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Repository: a local path or a URL (file://, git://, https://, ssh).
    #[arg(long)]
    pub repo: String,
    /// Branch to follow.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Desired-state folder inside the repository.
    #[arg(long, default_value = "desired-state")]
    pub path: String,
    /// Poll interval (with ±10% jitter), e.g. 30s, 5m.
    #[arg(long, default_value = "60s", value_parser = meridian::clock::parse_duration)]
    pub interval: std::time::Duration,
    /// Re-observe and correct drift this often even without a new commit.
    #[arg(long, default_value = "10m", value_parser = meridian::clock::parse_duration)]
    pub drift_interval: std::time::Duration,
    /// Address for /status, /metrics, /healthz, /readyz, and the webhooks
    /// unless --webhook-listen gives them their own.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: std::net::SocketAddr,
    /// Serve the webhooks (and the probes /healthz and /readyz) on this
    /// address instead, and only them: the Git host can reach it while
    /// /status and /metrics stay on --listen (loopback by default). Needs a
    /// webhook secret.
    #[arg(long, value_name = "ADDRESS")]
    pub webhook_listen: Option<std::net::SocketAddr>,
    /// Where status and repository mirrors are kept.
    #[arg(long, default_value = ".meridian-state")]
    pub state_dir: PathBuf,
    /// Environment variable holding the webhook secret.
    #[arg(long, value_name = "NAME", conflicts_with = "webhook_secret_file")]
    pub webhook_secret_env: Option<String>,
    /// File holding the webhook secret.
    #[arg(long, value_name = "PATH")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Environment variable holding a bearer token: /status and /metrics
    /// then require `Authorization: Bearer TOKEN` (/healthz and /readyz
    /// stay open for probes).
    #[arg(long, value_name = "NAME", conflicts_with = "status_token_file")]
    pub status_token_env: Option<String>,
    /// File holding that bearer token (e.g. a mounted Kubernetes Secret).
    #[arg(long, value_name = "PATH")]
    pub status_token_file: Option<PathBuf>,
    /// Allow a revision that declares nothing to delete everything meridian manages.
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub git: GitArgs,
    #[command(flatten)]
    pub signatures: SignatureArgs,
    /// Run as one of several replicas: only the leader elected in etcd
    /// plans and writes, under a fenced term; the rollout ledger lives in
    /// etcd under the prefix. `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`.
    #[arg(long, value_name = "URL", value_parser = meridian::daemon::election::EtcdTarget::parse)]
    pub election: Option<meridian::daemon::election::EtcdTarget>,
    /// This replica's name in the election (default: host name and process id).
    #[arg(long, requires = "election")]
    pub identity: Option<String>,
    /// How long a leader's lease lasts without renewal.
    #[arg(long, default_value = "15s", value_parser = meridian::clock::parse_duration, requires = "election")]
    pub lease_duration: std::time::Duration,
    /// How long a leader keeps acting without renewing its lease; below
    /// --lease-duration.
    #[arg(long, default_value = "10s", value_parser = meridian::clock::parse_duration, requires = "election")]
    pub renew_deadline: std::time::Duration,
    /// How often a leader renews and a follower tries to take over.
    #[arg(long, default_value = "2s", value_parser = meridian::clock::parse_duration, requires = "election")]
    pub retry_period: std::time::Duration,
}

pub async fn daemon(cli: &Cli, args: &RunArgs) -> Result<u8> {
    let secret = match (&args.webhook_secret_env, &args.webhook_secret_file) {
        (Some(name), _) => {
            let value = std::env::var(name)
                .with_context(|| format!("the webhook secret variable {name} is not set"))?;
            Some(
                meridian::daemon::webhook::Secret::new(value.as_bytes())
                    .with_context(|| format!("the webhook secret in {name} is empty"))?,
            )
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the webhook secret file {}", path.display()))?;
            Some(
                meridian::daemon::webhook::Secret::new(&bytes).with_context(|| {
                    format!("the webhook secret file {} is empty", path.display())
                })?,
            )
        }
        (None, None) => None,
    };
    let signatures = args.signatures.policy()?;
    if let Some(webhooks) = args.webhook_listen {
        if secret.is_none() {
            eprintln!(
                "error: --webhook-listen {webhooks} serves only webhooks, and webhooks are refused without a secret: give --webhook-secret-env or --webhook-secret-file"
            );
            return Ok(exit::ERROR);
        }
        let listen = args.listen;
        // One port on two addresses clashes when they are the same, or when
        // either is a wildcard (0.0.0.0, ::) that takes every address.
        if webhooks.port() == listen.port()
            && webhooks.port() != 0
            && (webhooks.ip() == listen.ip()
                || webhooks.ip().is_unspecified()
                || listen.ip().is_unspecified())
        {
            eprintln!(
                "error: --webhook-listen {webhooks} and --listen {listen} share port {}: give the webhooks another port, or leave --webhook-listen out to serve everything on --listen",
                webhooks.port()
            );
            return Ok(exit::ERROR);
        }
    }
    if args.election.is_some()
        && !(args.retry_period < args.renew_deadline && args.renew_deadline < args.lease_duration)
    {
        eprintln!(
            "error: the election timings must satisfy --retry-period < --renew-deadline < --lease-duration (got {:?} < {:?} < {:?})",
            args.retry_period, args.renew_deadline, args.lease_duration
        );
        return Ok(exit::ERROR);
    }
    let election = args.election.clone().map(|target| {
        let identity = args.identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "meridian".to_owned());
            format!("{host}-{}", std::process::id())
        });
        meridian::daemon::election::Election::new(
            target,
            identity,
            meridian::daemon::election::Timings {
                lease: args.lease_duration,
                renew_deadline: args.renew_deadline,
                retry: args.retry_period,
            },
        )
    });
    let config = meridian::daemon::DaemonConfig {
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        path: args.path.clone(),
        interval: args.interval,
        drift_interval: args.drift_interval,
        listen: args.listen,
        webhook_listen: args.webhook_listen,
        status_token: status_token(args)?,
        state_dir: args.state_dir.clone(),
        webhook_secret: secret,
        allow_empty: args.allow_empty,
        auth: args.git.auth(),
        engine: options(cli),
        election,
        signatures,
    };
    meridian::daemon::run(config).await?;
    Ok(exit::OK)
}

/// The bearer token of `--status-token-env` / `--status-token-file`.
fn status_token(args: &RunArgs) -> Result<Option<meridian::daemon::access::BearerToken>> {
    use meridian::daemon::access::BearerToken;
    match (&args.status_token_env, &args.status_token_file) {
        (Some(name), _) => {
            let value = std::env::var(name)
                .with_context(|| format!("the status token variable {name} is not set"))?;
            BearerToken::new(value.as_bytes())
                .map(Some)
                .with_context(|| format!("the status token in {name}"))
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading the status token file {}", path.display()))?;
            BearerToken::new(&bytes)
                .map(Some)
                .with_context(|| format!("the status token file {}", path.display()))
        }
        (None, None) => Ok(None),
    }
}
