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
