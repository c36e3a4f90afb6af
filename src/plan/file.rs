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

/// The largest saved plan meridian reads (1 GiB): room for the 256 MiB of
/// desired state it may carry, JSON-escaped, and the plan of a fleet many
/// times the reference fleet.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

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
    /// The file, or the desired state it carries, is larger than meridian
    /// reads.
    #[error("{path}: {why}")]
    Limit {
        /// The file.
        path: String,
        /// Which limit, and by how much.
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
        use std::io::Read as _;
        let shown = path.display().to_string();
        let io = |cause| PlanFileError::Io {
            path: shown.clone(),
            cause,
        };
        // Bounded like the desired state it carries: refused from its
        // length, and the read stops past the limit.
        let file = std::fs::File::open(path).map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        let too_large = |bytes: u64| PlanFileError::Limit {
            path: shown.clone(),
            why: format!(
                "a saved plan may be at most {} ({MAX_FILE_BYTES} bytes); this one is {bytes} bytes",
                crate::model::yaml::size_text(MAX_FILE_BYTES),
            ),
        };
        if length > MAX_FILE_BYTES {
            return Err(too_large(length));
        }
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large(text.len() as u64));
        }
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
        // The files it carries are held to a desired state's limits, as
        // a folder or a revision is (each file's own size is checked when
        // it is parsed).
        let mut totals = crate::model::yaml::Totals::default();
        for saved in &file.desired_state {
            totals
                .add(saved.text.len() as u64)
                .map_err(|why| PlanFileError::Limit {
                    path: shown.clone(),
                    why: format!(
                        "the desired state it carries is too large: {}: {why}",
                        saved.path
                    ),
                })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_plan() -> Plan {
        crate::plan::test_plan(Vec::new())
    }

    #[test]
    fn a_saved_plan_larger_than_the_limit_is_refused_from_its_length() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.json");
        // Sparse: never read.
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(MAX_FILE_BYTES + 1).expect("set_len");
        match PlanFile::load(&path) {
            Err(PlanFileError::Limit { why, .. }) => {
                assert_eq!(
                    why,
                    "a saved plan may be at most 1 GiB (1073741824 bytes); this one is 1073741825 bytes"
                );
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn the_files_a_saved_plan_carries_are_held_to_the_desired_states_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plan.json");
        let files: Vec<SourceFile> = (0..=crate::model::yaml::MAX_FILES)
            .map(|n| SourceFile {
                path: format!("ds/f{n:06}.yaml"),
                text: String::new(),
            })
            .collect();
        PlanFile::new(&empty_plan(), &files)
            .save(&path)
            .expect("save");
        match PlanFile::load(&path) {
            Err(PlanFileError::Limit { why, .. }) => assert!(
                why.starts_with(
                    "the desired state it carries is too large: ds/f100000.yaml: a desired state may hold at most 100000 YAML files"
                ),
                "{why}"
            ),
            other => panic!("{:?}", other.map(|_| ())),
        }
        // One file fewer loads.
        PlanFile::new(&empty_plan(), &files[..files.len() - 1])
            .save(&path)
            .expect("save");
        assert!(PlanFile::load(&path).is_ok());
    }
}
