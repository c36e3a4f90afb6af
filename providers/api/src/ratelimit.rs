//! Client-side rate limits: a token bucket per provider and API family.
//!
//! A `Provider` document's `rateLimit` (requests per second, burst) becomes
//! one [`RateLimiter`] per API family with its own bucket in the cloud
//! (Global Accelerator; EC2; Compute Engine), shared by every
//! concurrent task of the provider, so a run never throttles itself. Every
//! attempt of every call takes a token, retries included. Over any window
//! of `t` seconds at most `burst + rate × t` calls start.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A rate: sustained calls per second and the burst allowed on top.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained calls per second (above zero).
    pub per_second: f64,
    /// Calls that may start at once after a quiet spell (at least one).
    pub burst: u32,
}

#[derive(Debug)]
struct Bucket {
    rate: Rate,
    /// Tokens available; negative when callers have reserved tokens that
    /// have not accrued yet (they are sleeping until they do).
    tokens: f64,
    at: Instant,
}

/// A token bucket shared by clones. [`RateLimiter::unlimited`] never waits.
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    bucket: Option<Arc<Mutex<Bucket>>>,
}

impl RateLimiter {
    /// A bucket that starts full.
    pub fn new(rate: Rate) -> Self {
        let rate = Rate {
            per_second: if rate.per_second.is_finite() && rate.per_second > 0.0 {
                rate.per_second
            } else {
                f64::MAX
            },
            burst: rate.burst.max(1),
        };
        Self {
            bucket: Some(Arc::new(Mutex::new(Bucket {
                rate,
                tokens: f64::from(rate.burst),
                at: Instant::now(),
            }))),
        }
    }

    /// No limit.
    pub fn unlimited() -> Self {
        Self { bucket: None }
    }

    /// A limiter for `rate`, or none.
    pub fn of(rate: Option<Rate>) -> Self {
        rate.map_or_else(Self::unlimited, Self::new)
    }

    /// How long the caller must wait for its token, taking it now. Callers
    /// are served in the order they ask.
    fn reserve(&self) -> Duration {
        let Some(bucket) = &self.bucket else {
            return Duration::ZERO;
        };
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let accrued = now.duration_since(bucket.at).as_secs_f64() * bucket.rate.per_second;
        bucket.tokens = (bucket.tokens + accrued).min(f64::from(bucket.rate.burst));
        bucket.at = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / bucket.rate.per_second)
        }
    }

    /// Waits until a call may start.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_the_burst_through_then_paces_at_the_rate() {
        let limiter = RateLimiter::new(Rate {
            per_second: 5.0,
            burst: 5,
        });
        let waits: Vec<Duration> = (0..8).map(|_| limiter.reserve()).collect();
        assert!(waits[..5].iter().all(Duration::is_zero), "{waits:?}");
        // The sixth waits a fifth of a second, the seventh two fifths, ...
        for (n, wait) in waits[5..].iter().enumerate() {
            let expected = 0.2 * (n as f64 + 1.0);
            assert!(
                (wait.as_secs_f64() - expected).abs() < 0.02,
                "call {} waits {wait:?}, expected {expected}s",
                n + 6
            );
        }
    }

    #[test]
    fn unlimited_never_waits() {
        let limiter = RateLimiter::unlimited();
        assert!((0..1000).all(|_| limiter.reserve().is_zero()));
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn no_one_second_window_holds_more_than_burst_plus_rate() {
        let limiter = RateLimiter::new(Rate {
            per_second: 5.0,
            burst: 5,
        });
        let start = tokio::time::Instant::now();
        let mut starts = Vec::new();
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire().await;
                    tokio::time::Instant::now()
                })
            })
            .collect();
        for task in tasks {
            starts.push(task.await.expect("task").duration_since(start));
        }
        starts.sort();
        for (i, first) in starts.iter().enumerate() {
            let within = starts[i..]
                .iter()
                .take_while(|t| **t < *first + Duration::from_secs(1))
                .count();
            assert!(
                within <= 10,
                "{within} calls start within a second of {first:?}"
            );
        }
        // And the limit is not stricter than asked: 40 calls take about
        // (40 - 5) / 5 = 7 s.
        let last = starts.last().copied().unwrap_or_default();
        assert!(last >= Duration::from_millis(6_900), "{last:?}");
    }
}
