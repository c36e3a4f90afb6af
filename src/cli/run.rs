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
    /// Address for /status, /metrics, /healthz, /readyz and the webhooks.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub listen: std::net::SocketAddr,
    /// Where status and repository mirrors are kept.
    #[arg(long, default_value = ".meridian-state")]
    pub state_dir: PathBuf,
    /// Environment variable holding the webhook secret.
    #[arg(long, value_name = "NAME", conflicts_with = "webhook_secret_file")]
    pub webhook_secret_env: Option<String>,
    /// File holding the webhook secret.
    #[arg(long, value_name = "PATH")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Allow a revision that declares nothing to delete everything meridian manages.
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub git: GitArgs,
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
