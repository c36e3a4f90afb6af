//! `meridian run`: the reconciler daemon.
//!
//! One loop of idempotent, level-triggered reconciles — fetch, validate,
//! observe, plan, apply — for the head of a branch. It polls at an interval
//! (with jitter), wakes early on a signed webhook, re-observes on a separate
//! drift interval, backs off exponentially with jitter after errors and
//! resets after a success. Never two reconciles at once: the loop is the only
//! caller. On SIGTERM/SIGINT the change in flight finishes, status is
//! persisted, and the process exits 0; the next start continues from live state.

pub mod access;
pub mod election;
pub mod metrics;
pub mod status;
pub mod webhook;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use meridian_provider::Action;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::apply::{Outcome as ChangeOutcome, Progress};
use crate::model::{self, DesiredState, LoadError};
use crate::providers::{ProviderOptions, Providers};
use crate::source::{GitAuth, RepoSource, Snapshot, SourceError};
use metrics::Metrics;
use status::{
    Attempt, Drift, LastError, Outcome, ResourceState, Retrying, RevisionAt, SignatureCheck, Status,
};
use webhook::Secret;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Repository: a local path or a URL.
    pub repo: String,
    /// Branch to follow.
    pub branch: String,
    /// Desired-state folder inside the repository.
    pub path: String,
    /// Poll interval.
    pub interval: Duration,
    /// Drift resync interval: re-observe and correct even without a new commit.
    pub drift_interval: Duration,
    /// HTTP listen address (status, metrics, probes; webhooks too unless
    /// `webhook_listen` is set).
    pub listen: SocketAddr,
    /// A separate address serving only the webhooks and `/healthz`.
    pub webhook_listen: Option<SocketAddr>,
    /// The bearer token `/status` and `/metrics` require, when set
    /// (`--status-token-env`, `--status-token-file`); probes stay open.
    pub status_token: Option<access::BearerToken>,
    /// Where status and repository mirrors live.
    pub state_dir: PathBuf,
    /// Webhook secret; webhooks are refused without one.
    pub webhook_secret: Option<Secret>,
    /// Allow a revision that declares nothing to delete everything meridian manages.
    pub allow_empty: bool,
    /// Git credentials.
    pub auth: GitAuth,
    /// Engine settings (simulator, retries).
    pub engine: ProviderOptions,
    /// The leader election, when several replicas run (`--election`).
    pub election: Option<Arc<election::Election>>,
    /// Only revisions signed by these keys are applied (`--verify-signatures`).
    pub signatures: Option<crate::source::SignaturePolicy>,
}

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {address}: {cause}")]
    Listen {
        /// Address.
        address: SocketAddr,
        /// Cause (part of the message, not a chained source).
        cause: std::io::Error,
    },
    /// The repository cannot be opened.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The state directory is unusable.
    #[error("state directory {path}: {cause}")]
    State {
        /// Directory.
        path: PathBuf,
        /// Cause (part of the message, not a chained source).
        cause: std::io::Error,
    },
}

struct Shared {
    status: Mutex<Status>,
    metrics: Metrics,
    trigger: Notify,
    /// The replay cache, persisted in `state_dir`.
    deliveries: Mutex<webhook::Deliveries>,
    state_dir: PathBuf,
    status_token: Option<access::BearerToken>,
    stop: Arc<AtomicBool>,
    /// Set once when the HTTP servers should stop: a watch, so a server
    /// that starts waiting after the signal still sees it.
    shutdown: tokio::sync::watch::Sender<bool>,
    ready: AtomicBool,
    secret: Option<Secret>,
    branch: String,
}

impl Shared {
    fn update_status(&self, f: impl FnOnce(&mut Status)) -> Status {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut status);
        status.clone()
    }
}

fn now_at(revision: &str) -> RevisionAt {
    let now = SystemTime::now();
    RevisionAt {
        revision: revision.to_owned(),
        at: crate::clock::rfc3339(now),
        at_unix: crate::clock::unix_seconds(now),
    }
}

fn jitter(duration: Duration, fraction: f64) -> Duration {
    let factor = 1.0 + fraction * (fastrand::f64() * 2.0 - 1.0);
    duration.mul_f64(factor.max(0.0))
}

/// The delay before retrying after `failures` consecutive errors: exponential
/// from one second, capped at the poll interval (and at least one second),
/// with ±20% jitter.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    jitter(base.min(interval.max(Duration::from_secs(1))), 0.2)
}

/// What a reconcile tells the loop.
enum Next {
    /// Success or nothing to do: wait the normal interval.
    Quiet,
    /// A transient failure (network, credentials, throttling, provider
    /// setup, live health blocking an invariant, a gate that cannot be
    /// evaluated): retry with jittered exponential backoff, never mark the
    /// revision failed. The reason is shown in `/status` with the next attempt.
    Retry(String),
    /// A rollout waits (a step bakes, a deny window, an anti-flap hold):
    /// look again at this time, or at the next poll if that comes first.
    At(std::time::SystemTime),
}

struct Loop {
    config: DaemonConfig,
    shared: Arc<Shared>,
    source: Arc<Mutex<RepoSource>>,
    last_good: Option<(Snapshot, DesiredState)>,
    /// The term this reconcile runs in (`--election`): its writes and its
    /// ledger are fenced by it, even if this replica is elected again later.
    term: i64,
    /// Verified signers of revisions, for the audit trail.
    signers: HashMap<String, String>,
}

impl Loop {
    /// The rollout ledger: in etcd under the leader's term with
    /// `--election`, the state directory's file otherwise.
    fn store(&self) -> crate::rollout::LedgerStore {
        match &self.config.election {
            Some(election) => crate::rollout::LedgerStore::shared(
                &self.config.state_dir,
                Arc::new(election::EtcdLedger(election.clone(), self.term)),
            ),
            None => crate::rollout::LedgerStore::new(&self.config.state_dir),
        }
    }

    /// The audit trail of a reconcile applying `revision`: in etcd with
    /// `--election`, in the state directory otherwise.
    async fn audit(&self, revision: &str) -> Arc<crate::audit::AuditLog> {
        let sink: Arc<dyn crate::audit::AuditSink> = match &self.config.election {
            Some(election) => Arc::new(election::EtcdAudit(election.clone())),
            None => Arc::new(crate::audit::FileSink::new(&self.config.state_dir)),
        };
        let author = match git2::Oid::from_str(revision) {
            Ok(commit) => self
                .blocking(move |s| Ok(s.author(commit)))
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let actor = match &self.config.election {
            Some(election) => election.identity().to_owned(),
            None => crate::audit::local_actor(),
        };
        Arc::new(crate::audit::AuditLog::new(
            sink,
            crate::audit::Context {
                revision: Some(revision.to_owned()),
                author,
                signer: self.signers.get(revision).cloned(),
                trigger: crate::audit::Trigger::Daemon,
                actor,
            },
        ))
    }

    /// Checks the signatures `--verify-signatures` asks for on `head`:
    /// `Refused` with the check (also in /status and metrics) when a
    /// signature is refused, `Unverifiable` when the history could not be
    /// read (retried, never recorded as refused).
    async fn verify(&mut self, head: &str, since: Option<String>) -> Result<(), Unverified> {
        let Some(policy) = self.config.signatures.clone() else {
            return Ok(());
        };
        let Ok(commit) = git2::Oid::from_str(head) else {
            return Ok(());
        };
        let since = since.and_then(|s| git2::Oid::from_str(&s).ok());
        let now = crate::clock::unix_seconds(SystemTime::now()) as i64;
        let checked = self
            .blocking(move |s| s.check_signatures(commit, since, &policy, now))
            .await;
        let check = match checked {
            Ok(crate::source::Checked {
                verdict: crate::source::signature::Verdict::Verified(signer),
                ..
            }) => {
                let who = format!("{} ({})", signer.principal, signer.fingerprint);
                self.signers.insert(head.to_owned(), who.clone());
                SignatureCheck {
                    revision: head.to_owned(),
                    verified: true,
                    message: format!("signed by {who}"),
                    signer: Some(who),
                    reason: None,
                    refused_commit: None,
                    at: crate::clock::now(),
                }
            }
            Ok(crate::source::Checked {
                commit,
                verdict: crate::source::signature::Verdict::Refused(refusal),
            }) => SignatureCheck {
                revision: head.to_owned(),
                verified: false,
                signer: None,
                reason: Some(refusal.reason().to_owned()),
                message: if commit == head {
                    format!(
                        "revision {} is refused ({}): {refusal}; it is not applied until a new commit, and the last good revision stays live",
                        &head[..head.len().min(12)],
                        refusal.reason()
                    )
                } else {
                    format!(
                        "revision {} is refused ({}): commit {} before it: {refusal}; it is not applied until a new commit, and the last good revision stays live",
                        &head[..head.len().min(12)],
                        refusal.reason(),
                        &commit[..commit.len().min(12)]
                    )
                },
                refused_commit: Some(commit),
                at: crate::clock::now(),
            },
            Err(error @ crate::source::SourceError::Behind { .. }) => SignatureCheck {
                revision: head.to_owned(),
                verified: false,
                signer: None,
                reason: Some("behind last applied".to_owned()),
                refused_commit: None,
                message: format!(
                    "revision {} is refused (behind last applied): {error}; the last good revision stays live",
                    &head[..head.len().min(12)]
                ),
                at: crate::clock::now(),
            },
            Err(error) => {
                let message = format!(
                    "the signatures of revision {} cannot be checked now: {error}; it is not applied, and checked again at the next attempt",
                    &head[..head.len().min(12)]
                );
                tracing::warn!(revision = %head, %message, "signatures not checked");
                return Err(Unverified::Unverifiable(message));
            }
        };
        let result = check
            .reason
            .clone()
            .unwrap_or_else(|| "verified".to_owned());
        self.shared.metrics.signature(&result, !check.verified);
        self.shared
            .update_status(|s| s.signature = Some(check.clone()));
        // Only the verdicts of the revisions in play are kept.
        let keep = self.last_good.as_ref().map(|(s, _)| s.revision.clone());
        self.signers
            .retain(|revision, _| revision == head || Some(revision) == keep.as_ref());
        if check.verified {
            tracing::info!(revision = %head, signer = check.signer.as_deref().unwrap_or("-"), "signature verified");
            Ok(())
        } else {
            tracing::warn!(revision = %head, reason = %result, message = %check.message, "revision refused");
            Err(Unverified::Refused(check))
        }
    }
}

/// Why a revision's signatures did not let it through.
enum Unverified {
    /// A signature was refused: never applied until a new commit.
    Refused(SignatureCheck),
    /// The history could not be read: tried again at the next attempt.
    Unverifiable(String),
}

struct LogProgress;

struct LogRollout;

impl crate::rollout::RolloutEvents for LogRollout {
    fn step(&self, number: usize, rollback: bool, plan: &crate::plan::Plan) {
        tracing::info!(
            step = number,
            rollback,
            changes = plan.changes.len(),
            "rollout step"
        );
    }

    fn waiting(&self, reason: &str) {
        tracing::info!(%reason, "rollout waiting");
    }
}

impl Progress for LogProgress {
    fn started(&self, change: &meridian_provider::Change, index: usize, total: usize) {
        tracing::info!(address = %change.address, action = ?change.action, "[{index}/{total}] applying");
    }

    fn finished(&self, outcome: &ChangeOutcome, done: usize, total: usize) {
        match &outcome.error {
            None => {
                tracing::info!(address = %outcome.address, elapsed_ms = outcome.elapsed.as_millis() as u64, "[{done}/{total}] applied")
            }
            Some(error) => {
                tracing::warn!(address = %outcome.address, %error, "[{done}/{total}] failed")
            }
        }
    }
}

impl Loop {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RepoSource) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let source = self.source.clone();
        tokio::task::spawn_blocking(move || {
            let source = source.lock().unwrap_or_else(|e| e.into_inner());
            f(&source)
        })
        .await
        .unwrap_or_else(|e| {
            Err(SourceError::Git {
                context: "git task".to_owned(),
                message: e.to_string(),
            })
        })
    }

    /// The message of the error just recorded, for a retry's reason.
    fn last_error_message(&self) -> String {
        self.shared
            .status
            .lock()
            .ok()
            .and_then(|s| s.last_error.as_ref().map(|e| e.message.clone()))
            .unwrap_or_else(|| "a transient error".to_owned())
    }

    fn fail(&self, revision: Option<&str>, message: String, details: Vec<String>) {
        tracing::warn!(revision = revision.unwrap_or("-"), %message, "reconcile failed");
        self.shared.update_status(|s| {
            s.last_error = Some(LastError {
                revision: revision.map(str::to_owned),
                at: crate::clock::now(),
                message,
                details,
            });
        });
    }

    fn finish(
        &self,
        revision: &str,
        trigger: &str,
        outcome: Outcome,
        applied: usize,
        started: Instant,
    ) {
        let seconds = started.elapsed().as_secs_f64();
        self.shared.metrics.reconciled(outcome.label(), seconds);
        let status = self.shared.update_status(|s| {
            s.reconciles += 1;
            s.last_attempted = Some(Attempt {
                revision: now_at(revision),
                outcome,
                trigger: trigger.to_owned(),
                changes_applied: applied,
                duration_seconds: seconds,
            });
            if matches!(
                outcome,
                Outcome::Invalid | Outcome::Blocked | Outcome::RolledBack | Outcome::Refused
            ) && !s.failed_revisions.iter().any(|r| r == revision)
            {
                s.failed_revisions.push(revision.to_owned());
                let excess = s.failed_revisions.len().saturating_sub(50);
                s.failed_revisions.drain(..excess);
            }
            // A reconcile that got through leaves nothing being retried:
            // /status never shows an applied revision as still retrying.
            if !matches!(outcome, Outcome::Retrying | Outcome::Error) {
                s.retrying = None;
            }
        });
        if !matches!(outcome, Outcome::Retrying | Outcome::Error) {
            self.shared.metrics.retrying(None);
        }
        if let Err(error) = status.save(&self.config.state_dir) {
            tracing::error!(%error, "cannot persist status");
        }
        // Ready as soon as a reconcile has finished, before anyone can see
        // its outcome in /status.
        self.shared.ready.store(true, Ordering::SeqCst);
        tracing::info!(
            outcome = outcome.label(),
            applied,
            seconds,
            "reconcile finished"
        );
    }

    async fn reconcile(&mut self, trigger: &str) -> Next {
        let started = Instant::now();
        let branch = self.config.branch.clone();
        let head = match self.blocking(move |s| s.fetch(&branch)).await {
            Ok(head) => {
                self.shared.metrics.fetched("ok");
                head.to_string()
            }
            Err(error) => {
                self.shared.metrics.fetched("error");
                self.fail(None, error.to_string(), Vec::new());
                self.shared
                    .metrics
                    .reconciled(Outcome::Error.label(), started.elapsed().as_secs_f64());
                return Next::Retry(self.last_error_message());
            }
        };
        let previous = self.shared.update_status(|s| {
            if s.head.as_ref().is_none_or(|h| h.revision != head) {
                s.head = Some(now_at(&head));
            }
        });
        // `meridian retry` clears a gate failure from the rollout ledger: a
        // revision rolled back after a failed gate rolls out again.
        let retried = previous.last_attempted.as_ref().is_some_and(|a| {
            a.revision.revision == head && matches!(a.outcome, Outcome::RolledBack)
        }) && self
            .store()
            .load()
            .is_ok_and(|l| !l.failed.contains_key(&head));
        if retried {
            tracing::info!(%head, "the failed revision was cleared by `meridian retry`; rolling it out again");
            self.shared
                .update_status(|s| s.failed_revisions.retain(|r| r != &head));
        }
        let settled = !retried
            && previous.last_attempted.as_ref().is_some_and(|a| {
                a.revision.revision == head
                    && matches!(
                        a.outcome,
                        Outcome::Applied
                            | Outcome::NoChanges
                            | Outcome::Invalid
                            | Outcome::Blocked
                            | Outcome::RolledBack
                            | Outcome::Refused
                    )
            });
        let known_bad = !retried && previous.failed_revisions.iter().any(|r| r == &head);
        if trigger != "drift" && trigger != "startup" && trigger != "takeover" && settled {
            tracing::debug!(%head, "no new revision");
            return Next::Quiet;
        }
        if known_bad {
            // A failed revision is not retried until a new commit; drift is
            // still corrected against the last good state.
            if trigger == "drift" || trigger == "startup" {
                if self.last_good.is_none() {
                    self.restore_last_good(
                        previous.last_applied.as_ref().map(|a| a.revision.clone()),
                    )
                    .await;
                }
                if let Some((snapshot, state)) = self.last_good.clone() {
                    return self
                        .converge(&snapshot.revision, &state, trigger, started)
                        .await;
                }
            }
            return Next::Quiet;
        }
        // A revision whose signatures are refused is never read further:
        // it stays refused until a new commit, and the last good revision
        // keeps being reconciled.
        // `=all` checks every commit after the last applied revision: this
        // replica's, or the one the shared ledger completed last (after a
        // takeover, or a restart with a fresh state directory).
        let since = previous
            .last_applied
            .as_ref()
            .map(|a| a.revision.clone())
            .or_else(|| {
                self.store()
                    .load()
                    .ok()
                    .and_then(|l| l.current)
                    .filter(|r| {
                        r.status == crate::rollout::RolloutStatus::Complete
                            && git2::Oid::from_str(&r.revision).is_ok()
                    })
                    .map(|r| r.revision)
            });
        match self.verify(&head, since).await {
            Ok(()) => {}
            Err(Unverified::Refused(check)) => {
                self.fail(
                    Some(&head),
                    check.message.clone(),
                    check.refused_commit.iter().cloned().collect(),
                );
                self.finish(&head, trigger, Outcome::Refused, 0, started);
                return Next::Quiet;
            }
            Err(Unverified::Unverifiable(message)) => {
                self.fail(Some(&head), message, Vec::new());
                self.shared
                    .metrics
                    .reconciled(Outcome::Error.label(), started.elapsed().as_secs_f64());
                return Next::Retry(self.last_error_message());
            }
        }
        let span = tracing::info_span!("reconcile", revision = %head, trigger);
        async {
            let path = self.config.path.clone();
            let allow_empty = self.config.allow_empty;
            let commit = match git2::Oid::from_str(&head) {
                Ok(commit) => commit,
                Err(error) => {
                    self.fail(Some(&head), error.to_string(), Vec::new());
                    return Next::Retry(self.last_error_message());
                }
            };
            let snapshot = match self.blocking(move |s| match s.snapshot(commit, &path, allow_empty) {
                Err(SourceError::PathMissing { .. }) if allow_empty => Ok(Snapshot { revision: commit.to_string(), path: path.clone(), files: Vec::new(), notes: vec![format!("{path} is absent; treated as empty (--allow-empty)")], digest: String::new() }),
                other => other,
            }).await {
                Ok(snapshot) => snapshot,
                Err(error) if error.invalid_revision() => {
                    self.fail(Some(&head), error.to_string(), Vec::new());
                    self.finish(&head, trigger, Outcome::Invalid, 0, started);
                    return Next::Quiet;
                }
                Err(error) => {
                    self.fail(Some(&head), error.to_string(), Vec::new());
                    self.shared.metrics.reconciled(Outcome::Error.label(), started.elapsed().as_secs_f64());
                    return Next::Retry(self.last_error_message());
                }
            };
            for note in &snapshot.notes {
                tracing::info!(%note, "ignored while reading desired state");
            }
            let loaded = if allow_empty { model::load_allowing_empty(&snapshot.files) } else { model::load(&snapshot.files) };
            let mut state = match loaded {
                Ok(state) => state,
                Err(LoadError::Invalid(diagnostics)) => {
                    let details: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                    self.fail(Some(&head), format!("revision {} is invalid: {} error(s); it was not applied and the last good state stays live", &head[..12], details.len()), details);
                    self.finish(&head, trigger, Outcome::Invalid, 0, started);
                    return Next::Quiet;
                }
                Err(error) => {
                    self.fail(Some(&head), error.to_string(), Vec::new());
                    self.finish(&head, trigger, Outcome::Invalid, 0, started);
                    return Next::Quiet;
                }
            };
            if state.providers.is_empty() {
                // An emptied revision (allowed by --allow-empty) still needs
                // the providers of the last good state to remove what it made.
                if let Some((_, good)) = &self.last_good {
                    state.providers = good.providers.clone();
                }
            }
            let next = self.converge(&head, &state, trigger, started).await;
            if matches!(next, Next::Quiet) {
                let applied = self.shared.status.lock().map(|s| s.last_applied.as_ref().is_some_and(|a| a.revision == head)).unwrap_or(false);
                if applied {
                    self.last_good = Some((snapshot, state));
                }
            }
            next
        }
        .instrument(span)
        .await
    }

    /// After a restart the last good state is not in memory: read it again
    /// from Git at the last applied revision, so drift keeps being corrected
    /// while the branch head is a revision that failed.
    async fn restore_last_good(&mut self, revision: Option<String>) {
        let Some(revision) = revision else { return };
        let Ok(commit) = git2::Oid::from_str(&revision) else {
            return;
        };
        // With --verify-signatures, the last good revision is reconciled
        // only while its own signature still verifies (a key may have been
        // retired since, or status.json may name another commit).
        if let Some(policy) = self.config.signatures.clone()
            && !self.signers.contains_key(&revision)
        {
            let policy = crate::source::SignaturePolicy {
                mode: crate::source::VerifyMode::Head,
                ..policy
            };
            let now = crate::clock::unix_seconds(SystemTime::now()) as i64;
            match self
                .blocking(move |s| s.check_signatures(commit, None, &policy, now))
                .await
            {
                Ok(crate::source::Checked {
                    verdict: crate::source::signature::Verdict::Verified(signer),
                    ..
                }) => {
                    self.signers.insert(
                        revision.clone(),
                        format!("{} ({})", signer.principal, signer.fingerprint),
                    );
                }
                Ok(crate::source::Checked {
                    verdict: crate::source::signature::Verdict::Refused(refusal),
                    ..
                }) => {
                    tracing::warn!(%revision, reason = refusal.reason(), %refusal, "the last applied revision is not trusted any more; drift is not corrected against it");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%revision, %error, "cannot check the last applied revision's signature; drift is not corrected against it for now");
                    return;
                }
            }
        }
        let path = self.config.path.clone();
        match self
            .blocking(move |s| s.snapshot(commit, &path, false))
            .await
        {
            Ok(snapshot) => match model::load(&snapshot.files) {
                Ok(state) => self.last_good = Some((snapshot, state)),
                Err(error) => {
                    tracing::warn!(%revision, %error, "the last applied revision no longer loads")
                }
            },
            Err(error) => {
                tracing::warn!(%revision, %error, "cannot read the last applied revision")
            }
        }
    }

    /// Observe, plan and apply `state` (the desired state of `revision`).
    async fn converge(
        &mut self,
        revision: &str,
        state: &DesiredState,
        trigger: &str,
        started: Instant,
    ) -> Next {
        let store = self.store();
        let prepared = match crate::reconcile::prepare(
            state,
            &self.config.engine,
            &store,
            revision,
            Some(revision.to_owned()),
            crate::reconcile::Checks::Waiting,
            crate::reconcile::Intent::Apply,
        )
        .await
        {
            Ok(prepared) => prepared,
            Err(crate::reconcile::PrepareError::Providers(error)) => {
                // Credentials, network, the provider's own setup: nothing
                // the revision can fix, so it is retried, not failed.
                self.fail(Some(revision), error.to_string(), Vec::new());
                self.finish(revision, trigger, Outcome::Retrying, 0, started);
                return Next::Retry(self.last_error_message());
            }
            Err(error @ crate::reconcile::PrepareError::Ledger(_)) => {
                self.fail(Some(revision), error.to_string(), Vec::new());
                self.finish(revision, trigger, Outcome::Error, 0, started);
                return Next::Retry(self.last_error_message());
            }
        };
        // Deny windows and anti-flap holds make the daemon wait, not fail:
        // the rollout pauses and resumes by itself. The invariants are
        // checked before a revision's rollout starts; once it runs, its
        // gates govern (and roll back), so a region failing mid-rollout
        // does not freeze it half-way.
        let crate::reconcile::Prepared {
            mut providers,
            desired,
            observation,
            plan,
            ledger,
            ..
        } = prepared;
        providers.audit = Some(self.audit(revision).await);
        // Every unit of work first checks, in etcd, that this replica
        // still leads.
        providers.fence = self.config.election.as_ref().map(|e| {
            Arc::new(election::ElectionFence(e.clone(), self.term))
                as Arc<dyn crate::providers::Fence>
        });
        let drift: Vec<Drift> = plan
            .changes
            .iter()
            .chain(plan.unwritten.iter().map(|u| &u.change))
            .map(|c| Drift {
                address: c.address.to_string(),
                drift: match c.action {
                    Action::Create => "missing",
                    Action::Update => "changed",
                    Action::Delete => "unexpected",
                    Action::Adopt => "not yet managed",
                }
                .to_owned(),
                fields: if matches!(c.action, Action::Update | Action::Adopt) {
                    c.fields
                        .iter()
                        .map(|f| {
                            format!(
                                "{}: {} → {}",
                                f.path,
                                crate::plan::render::show_value(f.before.as_ref()),
                                crate::plan::render::show_value(f.after.as_ref())
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect();
        self.shared
            .metrics
            .observed(drift.len(), plan.changes.len());
        self.shared.update_status(|s| s.drift = drift);
        let record_calls = |shared: &Shared, providers: &Providers| {
            for (name, calls) in providers.calls() {
                shared.metrics.api_calls(&name, &calls);
            }
            shared.metrics.retries(providers.stats.retries());
        };
        if plan.is_blocked() {
            // Blocked only by live health: retried until health returns.
            // Blocked by what the documents say: kept out until they change.
            let transient = plan.violations.iter().all(|v| v.transient);
            let details = plan
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.location, v.message))
                .collect();
            let short = &revision[..revision.len().min(12)];
            let message = if transient {
                format!(
                    "revision {short} waits for health: with the regions unhealthy now its schedule would break an invariant; it is retried, not failed"
                )
            } else {
                format!("revision {short} is blocked by policy; it was not applied")
            };
            self.fail(Some(revision), message, details);
            record_calls(&self.shared, &providers);
            if transient {
                self.finish(revision, trigger, Outcome::Retrying, 0, started);
                return Next::Retry(self.last_error_message());
            }
            self.finish(revision, trigger, Outcome::Blocked, 0, started);
            return Next::Quiet;
        }
        if plan.errored {
            let details = plan
                .gaps
                .iter()
                .map(|g| format!("{} of {}: {}", g.family, g.provider, g.error))
                .chain(plan.conflicts.iter().cloned())
                .collect();
            self.fail(
                Some(revision),
                "the live world was not fully observed or holds conflicting objects; nothing was applied".to_owned(),
                details,
            );
            record_calls(&self.shared, &providers);
            self.finish(revision, trigger, Outcome::Error, 0, started);
            return Next::Retry(self.last_error_message());
        }
        let deletes_everything = desired.is_empty() && plan.summary.delete > 0;
        if deletes_everything && !self.config.allow_empty {
            self.fail(Some(revision), format!("revision declares no resources but {} managed object(s) are live; refusing to delete everything without --allow-empty", plan.summary.delete), Vec::new());
            record_calls(&self.shared, &providers);
            self.finish(revision, trigger, Outcome::Blocked, 0, started);
            return Next::Quiet;
        }
        let mut resources: Vec<ResourceState> = desired
            .iter()
            .map(|(address, d)| ResourceState {
                address: address.to_string(),
                provider: d.provider.clone(),
                state: "in_sync".to_owned(),
                message: None,
            })
            .collect();
        for held in &plan.overridden {
            let address = held.change.address.to_string();
            tracing::info!(%address, until = %held.until, "held back by a break-glass override");
            if let Some(resource) = resources.iter_mut().find(|r| r.address == address) {
                resource.state = "overridden".to_owned();
                resource.message = Some(format!(
                    "overridden until {} (override on {}): differs from desired state on purpose",
                    held.until, held.address
                ));
            }
        }
        if let Some(failed) = ledger.failed.get(revision) {
            record_calls(&self.shared, &providers);
            self.fail(
                Some(revision),
                format!(
                    "revision {} failed its gates at {} and was rolled back; it is not tried again until a new commit or `meridian retry`",
                    &revision[..revision.len().min(12)],
                    failed.at
                ),
                vec![failed.reason.clone()],
            );
            self.shared.metrics.rollout(0, true);
            self.finish(revision, trigger, Outcome::RolledBack, 0, started);
            return Next::Quiet;
        }
        let in_progress = ledger.current.as_ref().is_some_and(|r| {
            r.revision == revision
                && matches!(
                    r.status,
                    crate::rollout::RolloutStatus::InProgress
                        | crate::rollout::RolloutStatus::RollingBack
                )
        });
        if plan.is_empty() && !in_progress {
            record_calls(&self.shared, &providers);
            self.succeed(revision, resources);
            self.finish(revision, trigger, Outcome::NoChanges, 0, started);
            return Next::Quiet;
        }
        let run = crate::rollout::run(
            state,
            &desired,
            revision,
            &providers,
            &store,
            &LogProgress,
            &LogRollout,
            &self.shared.stop,
            &crate::rollout::RunOptions {
                wait: false,
                deny_window_override: None,
                max_conflicts: 3,
                contract: None,
            },
            // One observation per reconcile: the rollout's first step
            // runs on the one this reconcile planned from.
            Some(observation),
        )
        .await;
        record_calls(&self.shared, &providers);
        let (end, outcomes) = match run {
            Ok(done) => done,
            Err(error) => {
                self.fail(Some(revision), error.to_string(), Vec::new());
                self.finish(revision, trigger, Outcome::Error, 0, started);
                return Next::Retry(self.last_error_message());
            }
        };
        // Resources by address: an apply of the whole fleet marks every
        // resource, so a scan per outcome would be quadratic.
        let index: HashMap<String, usize> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| (r.address.clone(), i))
            .collect();
        for outcome in &outcomes {
            if let Some(resource) = index
                .get(&outcome.address.to_string())
                .and_then(|&i| resources.get_mut(i))
            {
                resource.state = if outcome.error.is_some() {
                    "failed"
                } else {
                    "applied"
                }
                .to_owned();
                resource.message = outcome.error.as_ref().map(ToString::to_string);
            }
        }
        let applied = outcomes.iter().filter(|o| o.error.is_none()).count();
        let step = store
            .load()
            .ok()
            .and_then(|l| l.current)
            .filter(|r| r.revision == revision)
            .map(|r| r.steps.len())
            .unwrap_or(0);
        match end {
            crate::rollout::RunEnd::Done => {
                self.shared.metrics.rollout(0, false);
                self.succeed(revision, resources);
                self.finish(revision, trigger, Outcome::Applied, applied, started);
                Next::Quiet
            }
            crate::rollout::RunEnd::Waiting(until, reason) => {
                self.shared.metrics.rollout(step, false);
                self.shared.update_status(|s| {
                    s.resources = resources;
                    s.rollout_waiting = Some(reason.clone());
                });
                self.finish(revision, trigger, Outcome::RollingOut, applied, started);
                Next::At(until)
            }
            crate::rollout::RunEnd::Failed(reason) => {
                self.shared.metrics.rollout(0, true);
                self.fail(
                    Some(revision),
                    format!(
                        "revision {} failed its gates and was rolled back to the last good values; it is not tried again until a new commit or `meridian retry`",
                        &revision[..revision.len().min(12)]
                    ),
                    vec![reason],
                );
                self.shared.update_status(|s| {
                    s.resources = resources;
                    s.rollout_waiting = None;
                });
                self.finish(revision, trigger, Outcome::RolledBack, applied, started);
                Next::Quiet
            }
            crate::rollout::RunEnd::ApplyFailed(details) => {
                self.fail(Some(revision), format!("{} change(s) failed; what landed stays and the next reconcile continues from live state", details.len()), details);
                self.shared.update_status(|s| s.resources = resources);
                self.finish(revision, trigger, Outcome::Failed, applied, started);
                Next::Retry(self.last_error_message())
            }
            crate::rollout::RunEnd::Retry(reason) | crate::rollout::RunEnd::Stale(reason) => {
                self.shared.metrics.rollout(step, false);
                self.fail(Some(revision), reason.clone(), Vec::new());
                self.shared.update_status(|s| {
                    s.resources = resources;
                    s.rollout_waiting = Some(reason.clone());
                });
                self.finish(revision, trigger, Outcome::Retrying, applied, started);
                Next::Retry(reason)
            }
            crate::rollout::RunEnd::Interrupted => {
                self.shared.update_status(|s| s.resources = resources);
                self.finish(revision, trigger, Outcome::Interrupted, applied, started);
                Next::Quiet
            }
        }
    }

    /// Records that `revision` is live: the world now equals it, so no drift remains.
    fn succeed(&self, revision: &str, resources: Vec<ResourceState>) {
        let at = now_at(revision);
        self.shared.metrics.applied_at(at.at_unix);
        self.shared.metrics.observed(0, 0);
        self.shared.update_status(|s| {
            // When the head failed and this corrected drift against the last
            // good revision, the head's error stays visible.
            let head_failed = s.head.as_ref().is_some_and(|h| {
                h.revision != revision && s.failed_revisions.contains(&h.revision)
            });
            s.last_applied = Some(at);
            if !head_failed {
                s.last_error = None;
            }
            s.resources = resources;
            s.drift.clear();
        });
    }
}

/// The refusal of a read of `/status` or `/metrics` without the bearer
/// token the daemon was started with; `None` when the read may go on.
fn refuse_reader(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = shared.status_token.as_ref()?;
    let challenge = match token.check(header_text(headers, "authorization")) {
        access::Verdict::Admitted => return None,
        access::Verdict::Missing => "Bearer realm=\"meridian\"",
        access::Verdict::Invalid => "Bearer realm=\"meridian\", error=\"invalid_token\"",
    };
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            "this endpoint requires `Authorization: Bearer <token>` with the token meridian run was started with (--status-token-env or --status-token-file)\n",
        )
            .into_response(),
    )
}

async fn status_handler(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse_reader(&shared, &headers) {
        return refusal;
    }
    let status = shared.status.lock().map(|s| s.clone());
    match status {
        Ok(status) => axum::Json(status).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn metrics_handler(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse_reader(&shared, &headers) {
        return refusal;
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first reconcile has not finished\n",
        )
            .into_response()
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Verifies, de-duplicates and routes one webhook delivery.
fn webhook(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
    signature_header: &str,
    delivery_header: &str,
    event: Option<&str>,
) -> Response {
    let Some(secret) = &shared.secret else {
        shared.metrics.webhook("disabled");
        return (StatusCode::NOT_FOUND, "webhooks are disabled: start `meridian run` with --webhook-secret-env or --webhook-secret-file\n").into_response();
    };
    if !secret.verify(body, header_text(headers, signature_header)) {
        shared.metrics.webhook("unauthorized");
        tracing::warn!("webhook with a missing or invalid signature refused");
        return (StatusCode::UNAUTHORIZED, "invalid or missing signature\n").into_response();
    }
    match event {
        Some("ping") => {
            shared.metrics.webhook("ping");
            return (StatusCode::OK, "pong\n").into_response();
        }
        Some("push") | None => {}
        Some(other) => {
            shared.metrics.webhook("ignored");
            return (StatusCode::ACCEPTED, format!("ignored event `{other}`\n")).into_response();
        }
    }
    let payload: serde_json::Value =
        serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    if let Some(reference) = payload.get("ref").and_then(|r| r.as_str())
        && reference != format!("refs/heads/{}", shared.branch)
    {
        shared.metrics.webhook("ignored");
        return (
            StatusCode::ACCEPTED,
            format!("ignored push to `{reference}`\n"),
        )
            .into_response();
    }
    if let Some(delivery) = header_text(headers, delivery_header) {
        let mut seen = shared.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        if seen.seen(delivery) {
            shared.metrics.webhook("duplicate");
            return (StatusCode::OK, "duplicate delivery ignored\n").into_response();
        }
        seen.record(delivery);
        // Saved under the lock, so two deliveries never interleave their
        // writes; a lost save only lets a replay trigger one more fetch.
        if let Err(error) = seen.save(&shared.state_dir) {
            tracing::error!(%error, "cannot persist the webhook replay cache");
        }
    }
    shared.metrics.webhook("accepted");
    shared.trigger.notify_one();
    (StatusCode::ACCEPTED, "fetch scheduled\n").into_response()
}

/// The headers and body of a webhook delivery, or its refusal: a body larger
/// than [`webhook::MAX_BODY_BYTES`] gets 413, from its `Content-Length`
/// before any of it is read, else when reading passes the limit
/// ([`DefaultBodyLimit`] on the webhook routes). Nothing is triggered.
async fn delivery(shared: &Shared, request: Request) -> Result<(HeaderMap, Bytes), Response> {
    let too_large = || {
        shared.metrics.webhook("too_large");
        tracing::warn!(
            limit = webhook::MAX_BODY_BYTES,
            "webhook with an oversized body refused"
        );
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "webhook bodies may be at most {} bytes ({}); nothing was triggered, and the next poll still sees new commits\n",
                webhook::MAX_BODY_BYTES,
                model::yaml::size_text(webhook::MAX_BODY_BYTES as u64)
            ),
        )
            .into_response()
    };
    let declared =
        header_text(request.headers(), "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > webhook::MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let headers = request.headers().clone();
    match Bytes::from_request(request, &()).await {
        Ok(body) => Ok((headers, body)),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
        Err(rejection) => {
            shared.metrics.webhook("unreadable");
            Err(rejection.into_response())
        }
    }
}

async fn github(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (headers, body) = match delivery(&shared, request).await {
        Ok(delivery) => delivery,
        Err(refusal) => return refusal,
    };
    let event = header_text(&headers, "x-github-event").map(str::to_owned);
    webhook(
        &shared,
        &headers,
        &body,
        "x-hub-signature-256",
        "x-github-delivery",
        Some(event.as_deref().unwrap_or("unknown")),
    )
}

async fn generic(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (headers, body) = match delivery(&shared, request).await {
        Ok(delivery) => delivery,
        Err(refusal) => return refusal,
    };
    webhook(
        &shared,
        &headers,
        &body,
        "x-meridian-signature-256",
        "x-meridian-delivery",
        None,
    )
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    // A folder that could leave the repository is refused before anything is read.
    crate::source::folder_in_repository(&config.path)?;
    std::fs::create_dir_all(&config.state_dir).map_err(|cause| DaemonError::State {
        path: config.state_dir.clone(),
        cause,
    })?;
    let source = RepoSource::open(&config.repo, &config.state_dir, config.auth.clone())?;
    let repository = source.display().to_owned();
    let status = match Status::load(&config.state_dir) {
        Ok(Some(status))
            if status.repository == repository
                && status.branch == config.branch
                && status.path == config.path =>
        {
            status
        }
        Ok(_) => Status::new(&repository, &config.branch, &config.path),
        Err(cause) => {
            return Err(DaemonError::State {
                path: config.state_dir.clone(),
                cause,
            });
        }
    };
    let refused_head = status
        .signature
        .as_ref()
        .filter(|c| {
            !c.verified
                && status
                    .head
                    .as_ref()
                    .is_some_and(|h| h.revision == c.revision)
        })
        .and_then(|c| c.reason.clone());
    let shared = Arc::new(Shared {
        status: Mutex::new(status),
        metrics: Metrics::default(),
        trigger: Notify::new(),
        deliveries: Mutex::new(webhook::Deliveries::load(&config.state_dir).unwrap_or_else(
            |error| {
                // Losing the cache lets a replay trigger one more fetch of
                // the same head, nothing else: starting is worth more.
                tracing::warn!(%error, "cannot read the webhook replay cache; starting with an empty one");
                webhook::Deliveries::default()
            },
        )),
        state_dir: config.state_dir.clone(),
        status_token: config.status_token.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        shutdown: tokio::sync::watch::Sender::new(false),
        ready: AtomicBool::new(false),
        secret: config.webhook_secret.clone(),
        branch: config.branch.clone(),
    });
    shared.metrics.refused_since_before(refused_head.as_deref());
    let (listener, address) = bind(config.listen).await?;
    // Both bound before either is announced: a caller reading the lines
    // knows every address is served.
    let webhook_listener = match config.webhook_listen {
        Some(webhooks) => Some(bind(webhooks).await?),
        None => None,
    };
    println!("meridian: listening on {address}");
    if let Some((_, webhooks)) = &webhook_listener {
        println!("meridian: webhooks on {webhooks}");
    }
    tracing::info!(%address, webhooks = ?webhook_listener.as_ref().map(|(_, a)| *a), repository = %repository, branch = %config.branch, path = %config.path, "meridian run started");
    // The probes say only alive or ready: they are served wherever the
    // kubelet or a load balancer may look, the webhook address included.
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(shared.clone());
    let webhooks = Router::new()
        .route(
            "/webhook/github",
            post(github).layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES)),
        )
        .route(
            "/webhook/generic",
            post(generic).layer(DefaultBodyLimit::max(webhook::MAX_BODY_BYTES)),
        )
        .with_state(shared.clone());
    let reads = Router::new()
        .route("/status", get(status_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(shared.clone())
        .merge(probes.clone());
    let mut servers = Vec::new();
    match webhook_listener {
        Some((webhook_listener, _)) => {
            servers.push(serve(&shared, listener, reads));
            servers.push(serve(&shared, webhook_listener, webhooks.merge(probes)));
        }
        None => servers.push(serve(&shared, listener, reads.merge(webhooks))),
    }
    let signal_shared = shared.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: finishing the change in flight");
        signal_shared.stop.store(true, Ordering::SeqCst);
        signal_shared.trigger.notify_one();
    });

    let mut reconciler = Loop {
        config: config.clone(),
        shared: shared.clone(),
        source: Arc::new(Mutex::new(source)),
        last_good: None,
        term: 0,
        signers: HashMap::new(),
    };
    let mut trigger = "startup";
    let mut failures = 0u32;
    let mut next_drift = tokio::time::Instant::now() + config.drift_interval;
    let campaign = config.election.clone().map(|election| {
        let stop = shared.stop.clone();
        tokio::spawn(election.campaign(stop))
    });
    while !shared.stop.load(Ordering::SeqCst) {
        if let Some(election) = &config.election {
            let standing = election.standing();
            shared.metrics.election(&standing);
            shared.update_status(|s| s.election = Some(standing.clone()));
            match election.current_term() {
                Some(term) if standing.role == election::Role::Leader => reconciler.term = term,
                _ => {}
            }
            if standing.role != election::Role::Leader {
                // A follower keeps its Git mirror warm and serves reads;
                // it takes over at its next election round.
                let branch = config.branch.clone();
                let source = reconciler.source.clone();
                let fetched = tokio::task::spawn_blocking(move || {
                    let source = source.lock().ok()?;
                    source.fetch(&branch).ok().map(|h| h.to_string())
                })
                .await;
                if let Ok(Some(head)) = fetched {
                    shared.update_status(|s| {
                        if s.head.as_ref().is_none_or(|h| h.revision != head) {
                            s.head = Some(now_at(&head));
                        }
                    });
                }
                shared.ready.store(true, Ordering::SeqCst);
                tokio::select! {
                    _ = tokio::time::sleep(election.timings().retry) => {}
                    _ = shared.trigger.notified() => {}
                }
                trigger = "takeover";
                continue;
            }
        }
        let mut wake: Option<std::time::SystemTime> = None;
        let mut retry_reason = None;
        match reconciler.reconcile(trigger).await {
            Next::Quiet => failures = 0,
            Next::Retry(reason) => {
                failures += 1;
                retry_reason = Some(reason);
            }
            Next::At(until) => {
                failures = 0;
                wake = Some(until);
            }
        }
        shared.ready.store(true, Ordering::SeqCst);
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let mut delay = if failures == 0 {
            jitter(config.interval, 0.1)
        } else {
            backoff(failures, config.interval)
        };
        let retrying = retry_reason.map(|reason| {
            let next = SystemTime::now() + delay;
            Retrying {
                reason,
                attempts: failures,
                next_attempt: crate::clock::rfc3339(next),
                next_attempt_unix: crate::clock::unix_seconds(next),
            }
        });
        shared.metrics.retrying(retrying.as_ref());
        let status = shared.update_status(|s| {
            if let (Some(now), Some(before)) = (&retrying, &s.retrying)
                && before.reason != now.reason
            {
                tracing::info!(reason = %now.reason, "retrying for another reason");
            }
            s.retrying = retrying.clone();
        });
        if let Some(retrying) = &status.retrying {
            tracing::warn!(reason = %retrying.reason, attempt = retrying.attempts, next = %retrying.next_attempt, "transient failure; retrying with backoff");
        }
        if let Err(error) = status.save(&config.state_dir) {
            tracing::error!(%error, "cannot persist status");
        }
        if let Some(until) = wake {
            // A rollout step is due: wake for it (a little after, so the
            // bake has surely ended), or at the next poll if sooner.
            let due = until
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                + Duration::from_millis(50);
            delay = delay.min(due);
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => trigger = "poll",
            _ = shared.trigger.notified() => trigger = "webhook",
            _ = tokio::time::sleep_until(next_drift) => {
                trigger = "drift";
                next_drift = tokio::time::Instant::now() + config.drift_interval;
            }
        }
    }
    let status = shared
        .status
        .lock()
        .map(|s| s.clone())
        .unwrap_or_else(|e| e.into_inner().clone());
    if let Err(error) = status.save(&config.state_dir) {
        tracing::error!(%error, "cannot persist status");
    }
    if let Some(election) = &config.election {
        // Graceful handover: the loop stops between steps, never inside a
        // write batch; the lease is revoked so a follower takes over now.
        // The campaign stops first, so no round elects this replica again
        // after it has resigned.
        if let Some(campaign) = campaign {
            campaign.abort();
            let _ = campaign.await;
        }
        election.resign().await;
    }
    shared.shutdown.send_replace(true);
    // Graceful: requests in progress finish; a client holding a connection
    // open (a slow webhook sender) does not keep the process alive.
    for server in servers {
        if tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .is_err()
        {
            tracing::warn!("an HTTP connection was still open 5 s after shutdown; closing it");
        }
    }
    tracing::info!("meridian run stopped");
    Ok(())
}

/// Binds `address`; the listener and the address it got (port 0 picks one).
async fn bind(address: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), DaemonError> {
    let listen = |cause| DaemonError::Listen { address, cause };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(listen)?;
    let bound = listener.local_addr().map_err(listen)?;
    Ok((listener, bound))
}

/// Serves `router` on `listener` until the daemon shuts down.
fn serve(
    shared: &Arc<Shared>,
    listener: tokio::net::TcpListener,
    router: Router,
) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut stopping = shared.shutdown.subscribe();
        let shutdown = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "HTTP server stopped");
        }
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_by_the_interval() {
        let interval = Duration::from_secs(60);
        assert!(backoff(1, interval) <= Duration::from_millis(1200));
        assert!(backoff(4, interval) >= Duration::from_millis(6400));
        assert!(backoff(30, interval) <= Duration::from_secs(72));
    }
}
