//! `meridian plan`: show what apply would change, and save it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use meridian::exit;
use meridian::plan::file::PlanFile;
use meridian::plan::render::{self, Format};

use super::*;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Save the plan, with the desired state it was made from, for
    /// `apply --plan` (which carries out exactly it).
    #[arg(long, value_name = "PLAN")]
    pub out: Option<PathBuf>,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

pub async fn plan(cli: &Cli, args: &PlanArgs) -> Result<u8> {
    let Some(state) = load(&args.dir)? else {
        return Ok(exit::ERROR);
    };
    let (_, plan) = plan_now(cli, &state, Some(&args.rollout)).await?;
    print!("{}", render::plan(&plan, args.format, style()));
    if let Some(out) = &args.out {
        // The plan with the desired state it was made from: `apply --plan`
        // carries out exactly this.
        let files = meridian::model::read_dir_relative(&args.dir)?;
        PlanFile::new(&plan, &files)
            .save(out)
            .with_context(|| format!("saving the plan to {}", out.display()))?;
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
