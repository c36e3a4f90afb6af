//! `meridian override set|clear`: break-glass overrides.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use meridian::desired;
use meridian::exit;

use super::*;

#[derive(Debug, Subcommand)]
pub enum OverrideCommand {
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
        /// The state directory whose audit trail records the write.
        #[arg(long, default_value = ".meridian-state")]
        state_dir: PathBuf,
        /// Record the write in the audit trail the `meridian run
        /// --election` replicas keep in this etcd instead.
        #[arg(long, value_name = "URL", value_parser = meridian::daemon::election::EtcdTarget::parse)]
        election: Option<meridian::daemon::election::EtcdTarget>,
    },
    /// Remove the override marker: the next apply or reconcile reverts the
    /// traffic changes made by hand.
    Clear {
        /// The object, named as for `override set`.
        target: String,
        /// Desired-state directory, for its Provider documents.
        #[arg(long, default_value = "desired-state")]
        dir: PathBuf,
        /// The state directory whose audit trail records the write.
        #[arg(long, default_value = ".meridian-state")]
        state_dir: PathBuf,
        /// Record the write in the audit trail the `meridian run
        /// --election` replicas keep in this etcd instead.
        #[arg(long, value_name = "URL", value_parser = meridian::daemon::election::EtcdTarget::parse)]
        election: Option<meridian::daemon::election::EtcdTarget>,
    },
}

/// Who runs this command, for the record printed by `override set|clear`.
pub fn operator() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "an unknown user".to_owned())
}

pub async fn override_command(cli: &Cli, command: &OverrideCommand) -> Result<u8> {
    use meridian::plan::held as overrides;
    let (target, until, dir, state_dir, election) = match command {
        OverrideCommand::Set {
            target,
            until,
            dir,
            state_dir,
            election,
        } => (target, Some(until), dir, state_dir, election),
        OverrideCommand::Clear {
            target,
            dir,
            state_dir,
            election,
        } => (target, None, dir, state_dir, election),
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
    let mut providers = Providers::build(&state, &options(cli)).await?;
    providers.audit = Some(std::sync::Arc::new(meridian::audit::AuditLog::new(
        audit_sink(state_dir, election.as_ref()),
        meridian::audit::Context {
            trigger: meridian::audit::Trigger::Override,
            actor: meridian::audit::local_actor(),
            ..Default::default()
        },
    )));
    let resources = desired::expand(&state);
    let observation = meridian::observe::observe(&providers, &resources).await;
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
                .set_override(&target.provider, &target.address, None, Some(was.clone()))
                .await?;
            tracing::info!(address = %target.address, provider = %target.provider, was = %was, by = %who, "break-glass override cleared");
            println!(
                "Override cleared: {} (provider `{}`) was held until {was}; the next apply or reconcile reverts the traffic changes made by hand.\nCleared by {who} at {when}.",
                target.address, target.provider
            );
        }
        (Some(until), was) => {
            providers
                .set_override(
                    &target.provider,
                    &target.address,
                    Some(until.clone()),
                    was.clone(),
                )
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
