//! The daemon's status: what was attempted, what is live, what went wrong.
//!
//! Persisted as JSON in the state directory after every reconcile (written
//! atomically), served at `GET /status` and printed by `meridian status`.
//! Last-attempted and last-applied revisions are recorded separately, so a
//! bad commit never hides which revision is actually live.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the status JSON.
pub const STATUS_FORMAT_VERSION: u32 = 1;

/// A revision with when it was seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionAt {
    /// Commit id.
    pub revision: String,
    /// RFC 3339 time.
    pub at: String,
    /// Unix seconds, for metrics.
    pub at_unix: f64,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Changes were applied.
    Applied,
    /// The live world already matched.
    NoChanges,
    /// The revision's desired state is invalid.
    Invalid,
    /// A policy blocked the revision.
    Blocked,
    /// Applying failed part-way; the next reconcile continues from live state.
    Failed,
    /// Fetching or observing failed.
    Error,
    /// A shutdown stopped the apply between changes.
    Interrupted,
    /// A progressive rollout is under way: a step landed, more follow.
    RollingOut,
    /// A gate failed and the revision was rolled back (or held).
    RolledBack,
    /// Something outside the revision stopped it for now (credentials,
    /// network, provider setup, live health blocking an invariant, a gate
    /// that cannot be evaluated): retried with backoff, never failed.
    Retrying,
    /// The revision's signature was refused (`--verify-signatures`):
    /// unsigned, unknown key, bad signature or expired key. Never applied.
    Refused,
}

impl Outcome {
    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::NoChanges => "no_changes",
            Outcome::Invalid => "invalid",
            Outcome::Blocked => "blocked",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Interrupted => "interrupted",
            Outcome::RollingOut => "rolling_out",
            Outcome::RolledBack => "rolled_back",
            Outcome::Retrying => "retrying",
            Outcome::Refused => "refused",
        }
    }
}

/// The last reconcile attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Revision and time.
    #[serde(flatten)]
    pub revision: RevisionAt,
    /// What happened.
    pub outcome: Outcome,
    /// What started it: `poll`, `webhook`, `drift`, `startup`.
    pub trigger: String,
    /// Changes applied.
    pub changes_applied: usize,
    /// Seconds it took.
    pub duration_seconds: f64,
}

/// The last error, with every diagnostic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    /// Revision it concerns, when known.
    pub revision: Option<String>,
    /// RFC 3339 time.
    pub at: String,
    /// Summary.
    pub message: String,
    /// `file:line:col: field: message` lines, policy violations, failed changes.
    pub details: Vec<String>,
}

/// A transient failure being retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrying {
    /// What stops the reconcile for now.
    pub reason: String,
    /// Attempts in a row that failed this way.
    pub attempts: u32,
    /// When the next attempt starts (RFC 3339).
    pub next_attempt: String,
    /// The same, in Unix seconds.
    pub next_attempt_unix: f64,
}

/// One managed object's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// Address.
    pub address: String,
    /// Provider name.
    pub provider: String,
    /// `in_sync`, `applied`, `failed`, `pending`, or `overridden` (held back
    /// by a break-glass override).
    pub state: String,
    /// Error, for failed ones; the override's end, for overridden ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One drifted object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Address.
    pub address: String,
    /// `changed`, `missing` or `unexpected`.
    pub drift: String,
    /// `field: live → desired` lines.
    pub fields: Vec<String>,
}

/// The signature check of the last revision fetched (`--verify-signatures`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureCheck {
    /// The revision checked (the branch head).
    pub revision: String,
    /// Whether it may be applied.
    pub verified: bool,
    /// Who signed it (principal or user id, and key fingerprint), when verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// Why it was refused: `unsigned`, `unknown key`, `bad signature`,
    /// `expired key` or `unsupported signature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The commit the refusal is about (with `--verify-signatures=all`, an
    /// earlier commit than the head may be the one refused), and the details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_commit: Option<String>,
    /// A sentence for humans.
    pub message: String,
    /// When it was checked (RFC 3339).
    pub at: String,
}

/// The whole status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// JSON format version.
    pub format_version: u32,
    /// Repository (credentials removed).
    pub repository: String,
    /// Watched branch.
    pub branch: String,
    /// Desired-state folder.
    pub path: String,
    /// Latest revision fetched.
    pub head: Option<RevisionAt>,
    /// Last reconcile attempt.
    pub last_attempted: Option<Attempt>,
    /// Last revision fully applied.
    pub last_applied: Option<RevisionAt>,
    /// Last error, cleared by the next success.
    pub last_error: Option<LastError>,
    /// Revisions that failed validation, policy or a gate, not retried until a new commit.
    pub failed_revisions: Vec<String>,
    /// Per-object state after the last reconcile.
    pub resources: Vec<ResourceState>,
    /// Current drift: what the last observation found that is not yet
    /// corrected (empty after a successful apply).
    pub drift: Vec<Drift>,
    /// Reconciles since start.
    pub reconciles: u64,
    /// What the progressive rollout under way waits for, if one is.
    #[serde(default)]
    pub rollout_waiting: Option<String>,
    /// The transient failure being retried, if one is; cleared by the next
    /// reconcile that is not one.
    #[serde(default)]
    pub retrying: Option<Retrying>,
    /// This replica's part in the leader election (`--election`): its
    /// role, the leader and the term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub election: Option<super::election::Standing>,
    /// The signature check of the head (`--verify-signatures`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureCheck>,
}

impl Status {
    /// An empty status for a watched repository.
    pub fn new(repository: &str, branch: &str, path: &str) -> Self {
        Self {
            format_version: STATUS_FORMAT_VERSION,
            repository: repository.to_owned(),
            branch: branch.to_owned(),
            path: path.to_owned(),
            head: None,
            last_attempted: None,
            last_applied: None,
            last_error: None,
            failed_revisions: Vec::new(),
            resources: Vec::new(),
            drift: Vec::new(),
            reconciles: 0,
            rollout_waiting: None,
            retrying: None,
            election: None,
            signature: None,
        }
    }

    /// The status file in a state directory.
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("status.json")
    }

    /// Reads a persisted status.
    pub fn load(state_dir: &Path) -> std::io::Result<Option<Self>> {
        match std::fs::read(Self::file(state_dir)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes the status atomically.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let tmp = state_dir.join("status.json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, Self::file(state_dir))
    }

    /// A human summary.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "repository {} branch {} path {}",
            self.repository, self.branch, self.path
        );
        if let Some(e) = &self.election {
            let _ = writeln!(
                out,
                "election: this replica ({}) is {}; leader {} in term {}{}",
                e.identity,
                e.role.as_str(),
                e.leader.as_deref().unwrap_or("(none)"),
                e.term
                    .map_or_else(|| "(none)".to_owned(), |t| t.to_string()),
                e.stepped_down
                    .as_ref()
                    .map(|w| format!("; last stepped down: {w}"))
                    .unwrap_or_default()
            );
        }
        let show = |r: &Option<RevisionAt>| {
            r.as_ref().map_or("(none)".to_owned(), |r| {
                format!("{} at {}", &r.revision[..r.revision.len().min(12)], r.at)
            })
        };
        let _ = writeln!(out, "head:           {}", show(&self.head));
        if let Some(check) = &self.signature {
            let _ = writeln!(
                out,
                "signature:      {} {}",
                &check.revision[..check.revision.len().min(12)],
                if check.verified {
                    check.message.clone()
                } else {
                    format!("REFUSED ({})", check.reason.as_deref().unwrap_or("refused"))
                }
            );
        }
        let _ = writeln!(out, "last applied:   {}", show(&self.last_applied));
        match &self.last_attempted {
            Some(a) => {
                let _ = writeln!(
                    out,
                    "last attempted: {} at {} ({}, {}, {} change(s), {:.1}s)",
                    &a.revision.revision[..a.revision.revision.len().min(12)],
                    a.revision.at,
                    a.outcome.label(),
                    a.trigger,
                    a.changes_applied,
                    a.duration_seconds
                );
            }
            None => {
                let _ = writeln!(out, "last attempted: (none)");
            }
        }
        if let Some(retrying) = &self.retrying {
            let _ = writeln!(
                out,
                "retrying:       {} (attempt {}, next at {})",
                retrying.reason, retrying.attempts, retrying.next_attempt
            );
        }
        if let Some(error) = &self.last_error {
            let _ = writeln!(out, "last error:     {} ({})", error.message, error.at);
            for detail in &error.details {
                let _ = writeln!(out, "  {detail}");
            }
        }
        let _ = writeln!(
            out,
            "resources:      {} managed, {} drifted at last observation",
            self.resources.len(),
            self.drift.len()
        );
        for drift in &self.drift {
            let _ = writeln!(
                out,
                "  {} {} {}",
                drift.drift,
                drift.address,
                drift.fields.join("; ")
            );
        }
        out
    }
}
