//! Prometheus metrics of the daemon, in the text exposition format (0.0.4).
//!
//! Kept small and explicit: a handful of families, rendered by hand with
//! label values escaped as the format requires.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use meridian_provider::CallCounter;

const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Debug, Default)]
struct Inner {
    duration_buckets: [u64; BUCKETS.len()],
    duration_count: u64,
    duration_sum: f64,
    reconciles: BTreeMap<String, u64>,
    last_applied_timestamp: f64,
    drifted: u64,
    pending: u64,
    api_calls: BTreeMap<(String, String, String), u64>,
    retries: u64,
    fetches: BTreeMap<String, u64>,
    webhooks: BTreeMap<String, u64>,
    rollout_step: u64,
    revision_failed: u64,
    retry_attempts: u64,
    next_attempt: f64,
    election: Option<(String, String, i64)>,
    signature_checks: BTreeMap<String, u64>,
    refused: Option<String>,
}

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut inner) = self.inner.lock() {
            f(&mut inner);
        }
    }

    /// Records a finished reconcile.
    pub fn reconciled(&self, outcome: &str, seconds: f64) {
        self.with(|m| {
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    m.duration_buckets[i] += 1;
                }
            }
            m.duration_count += 1;
            m.duration_sum += seconds;
            *m.reconciles.entry(outcome.to_owned()).or_default() += 1;
        });
    }

    /// Sets the time of the last applied revision.
    pub fn applied_at(&self, unix_seconds: f64) {
        self.with(|m| m.last_applied_timestamp = unix_seconds);
    }

    /// Sets the drifted-resource and pending-change gauges.
    /// The rollout's position: the current step (0 when none is under
    /// way) and whether the revision failed its gates.
    pub fn rollout(&self, step: usize, failed: bool) {
        self.with(|m| {
            m.rollout_step = step as u64;
            m.revision_failed = u64::from(failed);
        });
    }

    /// Drift and pending changes found by the last observation.
    pub fn observed(&self, drifted: usize, pending: usize) {
        self.with(|m| {
            m.drifted = drifted as u64;
            m.pending = pending as u64;
        });
    }

    /// Adds one provider's API calls made during a reconcile.
    pub fn api_calls(&self, provider: &str, calls: &[CallCounter]) {
        self.with(|m| {
            for call in calls {
                for (outcome, n) in [("ok", call.ok), ("error", call.failed)] {
                    if n > 0 {
                        *m.api_calls
                            .entry((
                                provider.to_owned(),
                                call.operation.clone(),
                                outcome.to_owned(),
                            ))
                            .or_default() += n;
                    }
                }
            }
        });
    }

    /// Adds retries after transient errors.
    pub fn retries(&self, n: u64) {
        self.with(|m| m.retries += n);
    }

    /// Counts a fetch of the repository.
    pub fn fetched(&self, result: &str) {
        self.with(|m| *m.fetches.entry(result.to_owned()).or_default() += 1);
    }

    /// Counts a webhook request by result.
    pub fn webhook(&self, result: &str) {
        self.with(|m| *m.webhooks.entry(result.to_owned()).or_default() += 1);
    }

    /// Fetches counted so far, all results.
    pub fn fetch_count(&self) -> u64 {
        self.inner
            .lock()
            .map(|m| m.fetches.values().sum())
            .unwrap_or(0)
    }

    /// Records the transient failure being retried, or that none is.
    pub fn retrying(&self, retrying: Option<&super::status::Retrying>) {
        self.with(|m| {
            m.retry_attempts = retrying.map_or(0, |r| u64::from(r.attempts));
            m.next_attempt = retrying.map_or(0.0, |r| r.next_attempt_unix);
        });
    }

    /// Records this replica's role, the leader's identity and its term.
    pub fn election(&self, standing: &super::election::Standing) {
        if let Ok(mut m) = self.inner.lock() {
            m.election = Some((
                standing.role.as_str().to_owned(),
                standing.leader.clone().unwrap_or_default(),
                standing.term.unwrap_or(0),
            ));
        }
    }

    /// Records a signature check of the head: `verified`, or the reason
    /// it was refused (the head then stays refused until a new commit).
    pub fn signature(&self, result: &str, refused: bool) {
        self.with(|m| {
            *m.signature_checks.entry(result.to_owned()).or_default() += 1;
            m.refused = refused.then(|| result.to_owned());
        });
    }

    /// Sets the refusal gauge without counting a check: at start, from
    /// the persisted status, so a restart does not clear an alert.
    pub fn refused_since_before(&self, reason: Option<&str>) {
        self.with(|m| m.refused = reason.map(str::to_owned));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let Ok(m) = self.inner.lock() else {
            return String::new();
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP meridian_reconcile_duration_seconds Time taken by one reconcile (fetch, validate, observe, plan, apply).\n# TYPE meridian_reconcile_duration_seconds histogram"
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "meridian_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                m.duration_buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "meridian_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            m.duration_count
        );
        let _ = writeln!(
            out,
            "meridian_reconcile_duration_seconds_sum {}",
            m.duration_sum
        );
        let _ = writeln!(
            out,
            "meridian_reconcile_duration_seconds_count {}",
            m.duration_count
        );
        let _ = writeln!(
            out,
            "# HELP meridian_reconciles_total Reconciles by outcome.\n# TYPE meridian_reconciles_total counter"
        );
        for outcome in [
            "applied",
            "no_changes",
            "invalid",
            "blocked",
            "failed",
            "error",
            "interrupted",
            "rolling_out",
            "rolled_back",
            "retrying",
            "refused",
        ] {
            let _ = writeln!(
                out,
                "meridian_reconciles_total{{outcome=\"{outcome}\"}} {}",
                m.reconciles.get(outcome).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP meridian_last_applied_revision_timestamp_seconds When the last revision was fully applied (Unix time).\n# TYPE meridian_last_applied_revision_timestamp_seconds gauge\nmeridian_last_applied_revision_timestamp_seconds {}",
            m.last_applied_timestamp
        );
        let _ = writeln!(
            out,
            "# HELP meridian_transient_failures Reconciles in a row stopped by a transient failure, being retried with backoff (0 when none is).\n# TYPE meridian_transient_failures gauge\nmeridian_transient_failures {}",
            m.retry_attempts
        );
        let _ = writeln!(
            out,
            "# HELP meridian_next_attempt_timestamp_seconds When the next retry of a transient failure starts (Unix time; 0 when none is due).\n# TYPE meridian_next_attempt_timestamp_seconds gauge\nmeridian_next_attempt_timestamp_seconds {}",
            m.next_attempt
        );
        let _ = writeln!(
            out,
            "# HELP meridian_rollout_step The step of the progressive rollout under way (0 when none is).\n# TYPE meridian_rollout_step gauge\nmeridian_rollout_step {}",
            m.rollout_step
        );
        let _ = writeln!(
            out,
            "# HELP meridian_revision_failed Whether the head revision failed its health gates and was rolled back (1) or not (0).\n# TYPE meridian_revision_failed gauge\nmeridian_revision_failed {}",
            m.revision_failed
        );
        let _ = writeln!(
            out,
            "# HELP meridian_audit_lines_lost_total Audit lines that could not be appended (disk full, etcd down); the writes they describe stand.\n# TYPE meridian_audit_lines_lost_total counter\nmeridian_audit_lines_lost_total {}",
            crate::audit::lost_lines()
        );
        let _ = writeln!(
            out,
            "# HELP meridian_signature_checks_total Signature checks of fetched revisions by result (verified, or the reason a revision was refused).\n# TYPE meridian_signature_checks_total counter"
        );
        for (result, n) in &m.signature_checks {
            let _ = writeln!(
                out,
                "meridian_signature_checks_total{{result=\"{}\"}} {n}",
                escape(result)
            );
        }
        let _ = writeln!(
            out,
            "# HELP meridian_revision_refused Whether the head revision's signature was refused (1, with the reason) or not (0).\n# TYPE meridian_revision_refused gauge"
        );
        match &m.refused {
            Some(reason) => {
                let _ = writeln!(
                    out,
                    "meridian_revision_refused{{reason=\"{}\"}} 1",
                    escape(reason)
                );
            }
            None => {
                let _ = writeln!(out, "meridian_revision_refused 0");
            }
        }
        let _ = writeln!(
            out,
            "# HELP meridian_drifted_resources Managed objects that differed from desired state at the last observation.\n# TYPE meridian_drifted_resources gauge\nmeridian_drifted_resources {}",
            m.drifted
        );
        let _ = writeln!(
            out,
            "# HELP meridian_pending_changes Changes planned at the last observation.\n# TYPE meridian_pending_changes gauge\nmeridian_pending_changes {}",
            m.pending
        );
        let _ = writeln!(
            out,
            "# HELP meridian_api_calls_total Cloud API calls by provider, operation and outcome.\n# TYPE meridian_api_calls_total counter"
        );
        for ((provider, operation, outcome), n) in &m.api_calls {
            let _ = writeln!(
                out,
                "meridian_api_calls_total{{provider=\"{}\",operation=\"{}\",outcome=\"{}\"}} {n}",
                escape(provider),
                escape(operation),
                escape(outcome)
            );
        }
        let _ = writeln!(
            out,
            "# HELP meridian_retries_total Cloud calls retried after transient errors.\n# TYPE meridian_retries_total counter\nmeridian_retries_total {}",
            m.retries
        );
        let _ = writeln!(
            out,
            "# HELP meridian_git_fetches_total Fetches of the watched repository by result.\n# TYPE meridian_git_fetches_total counter"
        );
        for (result, n) in &m.fetches {
            let _ = writeln!(
                out,
                "meridian_git_fetches_total{{result=\"{}\"}} {n}",
                escape(result)
            );
        }
        let _ = writeln!(
            out,
            "# HELP meridian_webhook_requests_total Webhook requests by result.\n# TYPE meridian_webhook_requests_total counter"
        );
        for (result, n) in &m.webhooks {
            let _ = writeln!(
                out,
                "meridian_webhook_requests_total{{result=\"{}\"}} {n}",
                escape(result)
            );
        }
        if let Some((role, leader, term)) = &m.election {
            let _ = writeln!(
                out,
                "# HELP meridian_leader Whether this replica is the leader (1) or not (0), with its role and the leader's identity.\n# TYPE meridian_leader gauge\nmeridian_leader{{role=\"{}\",leader=\"{}\"}} {}",
                escape(role),
                escape(leader),
                u8::from(role == "leader")
            );
            let _ = writeln!(
                out,
                "# HELP meridian_leader_term The current leader's term (its election key's revision in etcd; 0 when unknown).\n# TYPE meridian_leader_term gauge\nmeridian_leader_term {term}"
            );
        }
        out
    }
}
