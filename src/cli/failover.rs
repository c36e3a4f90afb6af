//! `meridian failover`: write the change that drains a region.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use meridian::exit;
use meridian::model::{self, LoadError};

#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    /// The region to drain (AWS or Google Cloud name).
    #[arg(long, value_name = "REGION")]
    pub from: String,
    /// A region to raise to full traffic (trafficDial 100, capacityScaler 1.0).
    #[arg(long, value_name = "REGION")]
    pub to: Option<String>,
    /// Commit the change on a new branch NAME of the repository holding
    /// DIR, leaving the working tree and the current branch alone. Without
    /// it, the change is printed as a unified diff for `git apply`.
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
}

pub fn failover(args: &FailoverArgs) -> Result<u8> {
    use meridian::failover::{self, FailoverError};
    let loaded = model::read_dir(&args.dir).and_then(|files| Ok((model::load(&files)?, files)));
    let (state, files) = match loaded {
        Ok(loaded) => loaded,
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
        Err(FailoverError::Refused { reasons, warnings }) => {
            for reason in &reasons {
                eprintln!("refused: {reason}");
            }
            for warning in &warnings {
                eprintln!("warning: {warning}");
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
    match &args.branch {
        Some(branch) => match failover::commit_branch(&args.dir, branch, &drain) {
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
        None => {
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
