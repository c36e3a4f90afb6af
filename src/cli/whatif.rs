//! `meridian whatif`: simulate a region outage.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use meridian::desired;
use meridian::exit;
use meridian::plan::render::Format;

use super::*;

#[derive(Debug, Args)]
pub struct WhatifArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    /// A region to take down, AWS or Google Cloud name (repeatable).
    #[arg(long = "region-down", value_name = "REGION", required = true)]
    pub region_down: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn whatif(cli: &Cli, args: &WhatifArgs) -> Result<u8> {
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
            let observation = meridian::observe::observe_with(&providers, &resources, true).await;
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
