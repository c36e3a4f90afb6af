//! `meridian validate`: check desired state offline.

use std::path::Path;

use anyhow::Result;
use meridian::exit;

use super::*;

pub async fn validate(dir: &Path) -> Result<u8> {
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
