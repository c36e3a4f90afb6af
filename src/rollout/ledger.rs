//! The rollout ledger: the persisted half of a rollout's position.
//!
//! `rollout.json` in the state directory holds the baseline (last good)
//! lever values, each step with its time and gate verdict, the failed
//! revisions, and the last move of every lever for the anti-flap rule. It is
//! written before a step is applied, so a crash mid-step bakes that step
//! again rather than skipping its bake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::schedule::Move;

/// The last move of one lever, for the anti-flap rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastMove {
    /// `1` up, `-1` down.
    pub direction: i32,
    /// When.
    pub at_ms: u64,
    /// Whether the move was part of a rollback after a failed gate (a
    /// failed gate lifts the anti-flap hold).
    pub gate_failed: bool,
}

/// A revision that failed its gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedRevision {
    /// When the gate failed.
    pub at: String,
    /// Why.
    pub reason: String,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutStatus {
    /// Moving toward desired state.
    InProgress,
    /// A gate failed: moving back to the baseline.
    RollingBack,
    /// Desired state reached and its gates passed.
    Complete,
    /// Rolled back (or held) after a failed gate.
    Failed,
}

/// A gate's state after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    /// Baking; gates are checked when the bake ends.
    Pending,
    /// Baking between rollback steps; no gate.
    BakeOnly,
    /// Passed.
    Passed,
    /// Failed.
    Failed,
    /// Nothing to wait for.
    None,
}

/// One step as carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based, over forward and rollback steps.
    pub number: usize,
    /// Whether this step rolls back.
    pub rollback: bool,
    /// When it was started.
    pub at: String,
    /// The same, in milliseconds since the epoch.
    pub at_ms: u64,
    /// Lever moves.
    pub moves: Vec<Move>,
    /// When its writes had all landed (the bake counts from here).
    #[serde(default)]
    pub landed_ms: Option<u64>,
    /// Bake after the step.
    pub bake_seconds: u64,
    /// Gate verdict.
    pub gate: GateState,
}

/// The rollout of one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Git revision, or the desired state's digest.
    pub revision: String,
    /// When it started.
    pub started_at: String,
    /// The same, in milliseconds since the epoch.
    pub started_ms: u64,
    /// Where it is.
    pub status: RolloutStatus,
    /// Last good lever values by address (lever units; scalers in points).
    pub baseline: BTreeMap<String, f64>,
    /// Healthy fraction per `subject@region` when it started.
    pub baseline_health: BTreeMap<String, f64>,
    /// Steps so far.
    pub steps: Vec<StepRecord>,
    /// Why it failed.
    pub failure: Option<String>,
    /// A recorded override of a deny window: who asked and why.
    pub deny_window_override: Option<String>,
    /// The confirmed plan whose steps this rollout carries out, when it
    /// carries out one ([`crate::plan::Plan::contract_id`]).
    #[serde(default)]
    pub plan: Option<String>,
    /// The steps of that plan carried out so far.
    #[serde(default)]
    pub plan_steps_done: usize,
}

/// The persisted rollout state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// The current (or last) rollout.
    pub current: Option<Rollout>,
    /// Revisions that failed their gates; not retried until a new revision
    /// or `meridian retry`.
    #[serde(default)]
    pub failed: BTreeMap<String, FailedRevision>,
    /// Last move per lever address, for anti-flap.
    #[serde(default)]
    pub moves: BTreeMap<String, LastMove>,
}

/// Where a ledger is kept when it is not a local file: etcd, shared by
/// the replicas of `meridian run --election`.
pub trait LedgerBackend: Send + Sync {
    /// The stored ledger, if any.
    fn load(&self) -> anyhow::Result<Option<Vec<u8>>>;
    /// Stores the ledger (refused when this process may no longer write).
    fn save(&self, bytes: Vec<u8>) -> anyhow::Result<()>;
    /// Where it is, for messages.
    fn describe(&self) -> String;
}

/// The ledger file in a state directory, or a shared backend.
#[derive(Clone)]
pub struct LedgerStore {
    path: PathBuf,
    shared: Option<std::sync::Arc<dyn LedgerBackend>>,
}

impl std::fmt::Debug for LedgerStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.shared {
            Some(shared) => write!(f, "LedgerStore({})", shared.describe()),
            None => write!(f, "LedgerStore({})", self.path.display()),
        }
    }
}

impl LedgerStore {
    /// The ledger of `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("rollout.json"),
            shared: None,
        }
    }

    /// The ledger kept in `backend` (the election's etcd): the election is
    /// its lock.
    pub fn shared(state_dir: &Path, backend: std::sync::Arc<dyn LedgerBackend>) -> Self {
        Self {
            path: state_dir.join("rollout.json"),
            shared: Some(backend),
        }
    }

    /// Takes the rollout lock of the state directory for as long as the
    /// returned file is held: one rollout at a time per ledger, so a command
    /// line `apply` and a daemon sharing a state directory never step the
    /// same rollout twice.
    pub fn lock(&self) -> anyhow::Result<Option<std::fs::File>> {
        if self.shared.is_some() {
            // One leader at a time: the election is the lock.
            return Ok(None);
        }
        let path = self.path.with_file_name("rollout.lock");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
                "another meridian is rolling out from {} right now (an `apply` or `meridian run`); wait for it, or use another --state-dir only if it manages other objects",
                path.parent()
                    .map_or_else(String::new, |p| p.display().to_string())
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(anyhow::anyhow!("locking {}: {e}", path.display()))
            }
        }
    }

    /// Reads the ledger; an absent file is an empty ledger.
    pub fn load(&self) -> anyhow::Result<Ledger> {
        if let Some(shared) = &self.shared {
            return match shared.load()? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!(
                        "{} is not a meridian rollout ledger ({e})",
                        shared.describe()
                    )
                }),
                None => Ok(Ledger::default()),
            };
        }
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a meridian rollout ledger ({e}); move it away to start afresh",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ledger::default()),
            Err(e) => Err(anyhow::anyhow!("reading {}: {e}", self.path.display())),
        }
    }

    /// Writes the ledger atomically.
    pub fn save(&self, ledger: &Ledger) -> anyhow::Result<()> {
        if let Some(shared) = &self.shared {
            return shared.save(serde_json::to_vec(ledger)?);
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(ledger)?)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))?;
        Ok(())
    }
}
