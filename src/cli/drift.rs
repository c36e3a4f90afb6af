//! `meridian drift`: report how the live world differs from desired state.

use std::path::Path;

use anyhow::Result;
use meridian::exit;
use meridian::plan::render::{self, Format};

use super::*;

pub async fn drift(cli: &Cli, dir: &Path, format: Format) -> Result<u8> {
    let Some(state) = load(dir)? else {
        return Ok(exit::ERROR);
    };
    let (_, plan) = plan_now(cli, &state, None).await?;
    // Differences meridian does not write (management observe or traffic)
    // are drift all the same.
    let plan = render::drift_view(&plan);
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
