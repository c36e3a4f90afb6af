//! The retry policy that acts on [`ErrorClass`].
//!
//! Providers wrap every single cloud call in [`with_retries`], so a retry
//! repeats one idempotent request, never a multi-call change half-way through.
//! Transient errors back off exponentially with full jitter; waiting errors
//! sleep the delay the cloud implies, up to a deadline; stalled errors return
//! at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{ErrorClass, ProviderError};

/// How hard to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts for transient errors, including the first.
    pub max_attempts: u32,
    /// First backoff ceiling; doubles each attempt.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// How long waiting errors may keep an operation waiting in total.
    pub max_wait: Duration,
    /// The longest sleep after one waiting error, whatever delay the error
    /// implies: polls of a cloud known to settle quickly (the simulated
    /// one) need not sleep as long as the real clouds' guidance says.
    pub max_poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 16,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(15 * 60),
            max_poll: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The sleep before retry number `attempt` (1-based): uniformly random in
    /// `[0, min(max_delay, base_delay * 2^(attempt-1))]` ("full jitter"), so
    /// that many clients throttled together do not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(fastrand::u64(0..=millis))
    }
}

/// Counts retries across a run, for reports and metrics.
#[derive(Debug, Clone, Default)]
pub struct RetryStats {
    retries: Arc<AtomicU64>,
    waits: Arc<AtomicU64>,
}

impl RetryStats {
    /// Retries after transient errors so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Re-attempts after waiting errors so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// Doublings of the backoff after throttles: at most 4 × `base_delay`.
const THROTTLE_BACKOFF_STEPS: u32 = 3;

/// Runs `call` until it succeeds, fails with a stalled error, or the policy
/// gives up. `what` names the operation and object for logs.
pub async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    stats: &RetryStats,
    what: &str,
    mut call: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let started = Instant::now();
    let mut transient_attempts = 0u32;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        match error.class {
            ErrorClass::Stalled | ErrorClass::Conflict => return Err(error),
            ErrorClass::Transient => {
                transient_attempts += 1;
                if transient_attempts >= policy.max_attempts {
                    tracing::warn!(%what, code = %error.code, attempts = transient_attempts, "giving up after transient errors");
                    return Err(error);
                }
                stats.retries.fetch_add(1, Ordering::Relaxed);
                // A throttled call is paced by the limiter before its next
                // attempt (ratelimit.rs): its backoff stays short, since a
                // long one only idles a token the bucket has already paid.
                let delay = if error.is_throttle() {
                    policy.backoff(transient_attempts.min(THROTTLE_BACKOFF_STEPS))
                } else {
                    policy.backoff(transient_attempts)
                };
                tracing::debug!(%what, code = %error.code, attempt = transient_attempts, ?delay, "transient error, retrying");
                tokio::time::sleep(delay).await;
            }
            ErrorClass::Waiting { retry_after } => {
                let retry_after = retry_after.min(policy.max_poll);
                if started.elapsed() + retry_after > policy.max_wait {
                    tracing::warn!(%what, code = %error.code, "gave up waiting");
                    return Err(error);
                }
                stats.waits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%what, code = %error.code, reason = %error.message, ?retry_after, "waiting for the cloud");
                tokio::time::sleep(retry_after).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_wait: Duration::from_millis(50),
            max_poll: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let stats = RetryStats::default();
        let calls = AtomicU32::new(0);
        let result = with_retries(&fast(), &stats, "t", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(ProviderError::transient(
                    "Op",
                    "ThrottlingException",
                    "slow down",
                ))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(result.expect("succeeds"), 7);
        assert_eq!(stats.retries(), 2);
    }

    #[tokio::test]
    async fn stalled_errors_are_never_retried() {
        let stats = RetryStats::default();
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(&fast(), &stats, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ProviderError::stalled(
                "Op",
                "LimitExceededException",
                "quota",
            ))
        })
        .await;
        assert_eq!(result.expect_err("fails").code, "LimitExceededException");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(stats.retries(), 0);
    }

    #[tokio::test]
    async fn transient_errors_give_up_after_max_attempts() {
        let stats = RetryStats::default();
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(&fast(), &stats, "t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(ProviderError::transient("Op", "InternalError", "boom"))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn waiting_errors_stop_at_the_deadline() {
        let stats = RetryStats::default();
        let result: Result<(), _> = with_retries(&fast(), &stats, "t", || async {
            Err(ProviderError::waiting(
                "Op",
                "AcceleratorNotDisabledException",
                Duration::from_millis(20),
                "busy",
            ))
        })
        .await;
        assert_eq!(
            result.expect_err("gives up").code,
            "AcceleratorNotDisabledException"
        );
        assert!(stats.waits() >= 1);
    }

    #[test]
    fn backoff_stays_under_the_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..30 {
            assert!(policy.backoff(attempt) <= policy.max_delay);
        }
    }
}
