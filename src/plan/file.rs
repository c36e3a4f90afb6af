//! The saved plan (`plan --out PLAN`): the reviewed plan, and the
//! desired state it was made from, in one file.
//!
//! `apply --plan PLAN` executes this and nothing else: the plan's changes
//! and steps with their values, the rules (bakes, gates, windows) and the
//! providers of the desired state it carries. Desired state edited after
//! the plan was saved does not leak in. A checksum over the content refuses
//! a file that was edited by hand; it is not a signature.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::SourceFile;
use crate::plan::{FORMAT_VERSION, Plan};

/// What a saved plan file says it is.
pub const KIND: &str = "meridian-saved-plan";

/// One desired-state file as the plan saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFile {
    /// Path relative to the desired-state folder.
    pub path: String,
    /// Content.
    pub text: String,
}

/// A saved plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanFile {
    /// Always [`KIND`].
    pub kind: String,
    /// The plan format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// SHA-256 over the plan and files below, as written.
    pub checksum: String,
    /// The plan, as `plan` showed it.
    pub plan: Plan,
    /// The desired state it was made from.
    pub desired_state: Vec<SavedFile>,
}

/// Why a saved plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not a saved meridian plan of this version.
    #[error("{path} is not a saved meridian plan this version reads: {why}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The content does not match its checksum.
    #[error(
        "{path} was changed after it was saved (its checksum does not match): only a plan as meridian wrote it is applied; run `meridian plan --out` again"
    )]
    Edited {
        /// The file.
        path: String,
    },
}

fn checksum(plan: &Plan, files: &[SavedFile]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(plan).unwrap_or_default());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(files).unwrap_or_default());
    format!("{:x}", hasher.finalize())
}

impl PlanFile {
    /// A saved plan of `plan`, made from `files` (paths relative to the
    /// desired-state folder).
    pub fn new(plan: &Plan, files: &[SourceFile]) -> Self {
        let desired_state: Vec<SavedFile> = files
            .iter()
            .map(|f| SavedFile {
                path: f.path.clone(),
                text: f.text.clone(),
            })
            .collect();
        Self {
            kind: KIND.to_owned(),
            format_version: FORMAT_VERSION,
            checksum: checksum(plan, &desired_state),
            plan: plan.clone(),
            desired_state,
        }
    }

    /// Writes the file.
    pub fn save(&self, path: &Path) -> Result<(), PlanFileError> {
        let io = |cause| PlanFileError::Io {
            path: path.display().to_string(),
            cause,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(io)
    }

    /// Reads a saved plan and checks that it is one, of this version, as
    /// it was written.
    pub fn load(path: &Path) -> Result<Self, PlanFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| PlanFileError::Io {
            path: shown.clone(),
            cause,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| PlanFileError::Format {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        if value.get("kind").and_then(|k| k.as_str()) != Some(KIND) {
            return Err(PlanFileError::Format {
                path: shown,
                why: "it has no `\"kind\": \"meridian-saved-plan\"` (write one with `meridian plan --out PLAN`; `plan --format json` prints a plan for scripts, not one to apply)".to_owned(),
            });
        }
        let version = value.get("format_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(FORMAT_VERSION)) {
            return Err(PlanFileError::Format {
                path: shown,
                why: format!(
                    "it has plan format {}, this meridian reads format {FORMAT_VERSION}",
                    version.map_or_else(|| "(none)".to_owned(), |v| v.to_string())
                ),
            });
        }
        let file: PlanFile = serde_json::from_value(value).map_err(|e| PlanFileError::Format {
            path: shown.clone(),
            why: e.to_string(),
        })?;
        if checksum(&file.plan, &file.desired_state) != file.checksum {
            return Err(PlanFileError::Edited { path: shown });
        }
        Ok(file)
    }

    /// The desired-state files, to load the state the plan was made from.
    pub fn files(&self) -> Vec<SourceFile> {
        self.desired_state
            .iter()
            .map(|f| SourceFile {
                path: f.path.clone(),
                text: f.text.clone(),
            })
            .collect()
    }
}
