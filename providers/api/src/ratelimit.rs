//! Client-side rate limits: a token bucket per provider and API family,
//! and adaptive pacing after the cloud throttles.
//!
//! A `Provider` document's `rateLimit` (requests per second, burst) becomes
//! one [`RateLimiter`] per API family with its own bucket in the cloud
//! (Global Accelerator; EC2; Compute Engine), shared by every
//! concurrent task of the provider, so a run never throttles itself. Every
//! attempt of every call takes a token, retries included. Over any window
//! of `t` seconds at most `burst + rate × t` calls start.
//!
//! The clouds do not publish every bucket (Global Accelerator documents
//! none), so each limiter also adapts, as the AWS SDKs' `adaptive` retry
//! mode does ("automatic client-side rate limiting", AWS SDKs and Tools
//! Reference Guide, *Retry behavior*): until the cloud first throttles, calls
//! start as fast as the bucket above allows; from the first throttle on,
//! calls are paced, evenly spaced, at a rate that CUBIC congestion control
//! (RFC 8312, with the SDKs' constants) finds: cut to 70% of the rate at a
//! throttle, then grown back along a cubic curve that flattens near the
//! rate that was last throttled and probes above it only slowly. A throttle
//! of a call that started before the last cut does not cut again: many
//! calls in flight at once are refused together, and that is one signal.
//! So a long apply converges at close to the account's real rate, with a
//! few throttled calls instead of a storm of retries and backoffs.

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

/// CUBIC's multiplicative decrease: the rate kept at a throttle.
const BETA: f64 = 0.7;
/// CUBIC's scaling constant (calls per second per second cubed).
const SCALE: f64 = 0.4;
/// The slowest pace adaptation goes to, calls per second.
const MIN_RATE: f64 = 0.5;
/// The window the sending rate is measured over.
const MEASURE_WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Adaptive {
    /// Whether the cloud has throttled yet; pacing starts then.
    enabled: bool,
    /// The current pace, calls per second.
    rate: f64,
    /// The rate at the last throttle (CUBIC's W_max).
    last_max: f64,
    /// When the last throttle cut the rate.
    last_throttle: Instant,
    /// When the next paced call may start.
    next_start: Instant,
    /// The measured sending rate (smoothed), calls per second.
    measured: f64,
    window_start: Instant,
    window_calls: u32,
    /// Throttles that cut the rate, for reports and tests.
    cuts: u64,
    /// Calls sent, and when the first was (for the first estimate).
    sent: u64,
    first_call: Instant,
}

impl Adaptive {
    fn new(now: Instant) -> Self {
        Self {
            enabled: false,
            rate: f64::MAX,
            last_max: 0.0,
            last_throttle: now,
            next_start: now,
            measured: 0.0,
            window_start: now,
            window_calls: 0,
            cuts: 0,
            sent: 0,
            first_call: now,
        }
    }

    /// Counts a call starting at `now` into the measured sending rate.
    fn measure(&mut self, now: Instant) {
        if self.sent == 0 {
            self.first_call = now;
        }
        self.sent += 1;
        self.window_calls += 1;
        let elapsed = now.duration_since(self.window_start);
        if elapsed >= MEASURE_WINDOW {
            let rate = f64::from(self.window_calls) / elapsed.as_secs_f64();
            // The SDKs' smoothing: 80% of the new window.
            self.measured = 0.8 * rate + 0.2 * self.measured;
            self.window_start = now;
            self.window_calls = 0;
        }
    }

    /// CUBIC's rate `t` seconds after the last throttle.
    fn cubic(&self, now: Instant) -> f64 {
        let t = now.duration_since(self.last_throttle).as_secs_f64();
        let k = (self.last_max * (1.0 - BETA) / SCALE).cbrt();
        (SCALE * (t - k).powi(3) + self.last_max).max(MIN_RATE)
    }

    /// How long a call asking at `now` waits, taking its slot.
    fn reserve(&mut self, now: Instant) -> Duration {
        self.measure(now);
        if !self.enabled {
            return Duration::ZERO;
        }
        // Never far above what is really being sent: a quiet spell does
        // not let the curve run away.
        let ceiling = (2.0 * self.measured).max(self.last_max);
        self.rate = self.cubic(now).min(ceiling).max(MIN_RATE);
        let start = self.next_start.max(now);
        self.next_start = start + Duration::from_secs_f64(1.0 / self.rate);
        start.duration_since(now)
    }

    /// The cloud throttled a call that started at `started`.
    fn throttled(&mut self, started: Instant, now: Instant) {
        if self.enabled && started < self.last_throttle {
            // Sent before the last cut: the same congestion, already met.
            return;
        }
        let sending = if self.enabled {
            self.rate
        } else {
            // The first throttle: the rate sent so far. It may be far above
            // what the cloud sustains (a burst), and then a few quick cuts
            // bring it down; starting below the cloud's rate would cost
            // the whole climb back.
            let elapsed = now.duration_since(self.first_call).as_secs_f64().max(0.001);
            self.sent as f64 / elapsed
        };
        self.last_max = sending.max(MIN_RATE);
        self.rate = (self.last_max * BETA).max(MIN_RATE);
        self.last_throttle = now;
        self.next_start = self.next_start.max(now);
        self.enabled = true;
        self.cuts += 1;
    }
}

/// A token bucket and an adaptive pace shared by clones.
/// [`RateLimiter::unlimited`] waits only after the cloud throttles.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    bucket: Option<Arc<Mutex<Bucket>>>,
    adaptive: Arc<Mutex<Adaptive>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::unlimited()
    }
}

/// When a call started, to tell the limiter about its throttle.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Instant);

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
            adaptive: Arc::new(Mutex::new(Adaptive::new(Instant::now()))),
        }
    }

    /// No bucket: only the adaptive pace, once the cloud throttles.
    pub fn unlimited() -> Self {
        Self {
            bucket: None,
            adaptive: Arc::new(Mutex::new(Adaptive::new(Instant::now()))),
        }
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

    /// Waits until a call may start: its token from the bucket, then its
    /// slot in the adaptive pace. The ticket tells [`Self::throttled`]
    /// when it started.
    pub async fn acquire(&self) -> Ticket {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let now = Instant::now();
        let paced = self
            .adaptive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(now);
        if !paced.is_zero() {
            tokio::time::sleep(paced).await;
        }
        Ticket(Instant::now())
    }

    /// The cloud throttled the call of `ticket`: slow down.
    pub fn throttled(&self, ticket: Ticket) {
        let mut adaptive = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
        let before = adaptive.rate;
        adaptive.throttled(ticket.0, Instant::now());
        if adaptive.rate < before {
            tracing::debug!(
                rate = adaptive.rate,
                "throttled by the cloud: pacing calls at {:.1} per second",
                adaptive.rate
            );
        }
    }

    /// The adaptive pace, calls per second, once the cloud has throttled.
    pub fn pace(&self) -> Option<f64> {
        let adaptive = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
        adaptive.enabled.then_some(adaptive.rate)
    }

    /// Throttles that cut the pace so far.
    pub fn cuts(&self) -> u64 {
        self.adaptive.lock().unwrap_or_else(|e| e.into_inner()).cuts
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

    /// A cloud's bucket: `burst` calls at once, refilled at `per_second`.
    struct CloudBucket {
        tokens: f64,
        at: Instant,
        burst: f64,
        per_second: f64,
    }

    impl CloudBucket {
        fn admit(&mut self) -> bool {
            let now = Instant::now();
            self.tokens = (self.tokens
                + now.duration_since(self.at).as_secs_f64() * self.per_second)
                .min(self.burst);
            self.at = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                true
            } else {
                false
            }
        }
    }

    /// `calls` calls by `workers` tasks against a cloud bucket of 100 burst
    /// and 20 per second, each throttled call retried after the limiter's
    /// pace (no backoff): how long they took, and how many were refused.
    async fn against_the_cloud(workers: usize, calls: usize) -> (Duration, usize) {
        against_the_cloud_from(workers, calls, 100.0).await
    }

    /// [`against_the_cloud`] with the cloud's bucket holding `tokens` at
    /// the start.
    async fn against_the_cloud_from(
        workers: usize,
        calls: usize,
        tokens: f64,
    ) -> (Duration, usize) {
        let limiter = RateLimiter::unlimited();
        let cloud = Arc::new(Mutex::new(CloudBucket {
            tokens,
            at: Instant::now(),
            burst: 100.0,
            per_second: 20.0,
        }));
        let left = Arc::new(Mutex::new(calls));
        let refused = Arc::new(Mutex::new(0usize));
        let start = Instant::now();
        let tasks: Vec<_> = (0..workers)
            .map(|_| {
                let (limiter, cloud, left, refused) = (
                    limiter.clone(),
                    cloud.clone(),
                    left.clone(),
                    refused.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        {
                            let mut left = left.lock().expect("lock");
                            if *left == 0 {
                                return;
                            }
                            *left -= 1;
                        }
                        loop {
                            let ticket = limiter.acquire().await;
                            // A call takes 5 ms on the wire.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            if cloud.lock().expect("lock").admit() {
                                break;
                            }
                            *refused.lock().expect("lock") += 1;
                            limiter.throttled(ticket);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let refused = *refused.lock().expect("lock");
        (start.elapsed(), refused)
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn after_a_throttle_calls_are_paced_close_to_the_clouds_rate() {
        // The bound: (2,000 − 100 burst) / 20 per second = 95 s.
        let (took, refused) = against_the_cloud(8, 2_000).await;
        let ratio = took.as_secs_f64() / 95.0;
        assert!(ratio >= 1.0, "faster than the cloud allows: {took:?}");
        assert!(
            ratio <= 1.15,
            "{took:?} for a 95 s bound ({ratio:.2}×), {refused} refused"
        );
        // CUBIC probes above the last throttled rate now and then, and each
        // probe costs a refused call or two: a few percent of the calls,
        // where retries with backoff alone are refused by the hundred.
        assert!(refused <= 200, "{refused} of 2,000 calls refused");
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_bucket_another_run_emptied_is_met_at_its_rate_at_once() {
        // 400 calls at an empty bucket of 20 per second: 20 s at least.
        let (took, refused) = against_the_cloud_from(8, 400, 0.0).await;
        let ratio = took.as_secs_f64() / 20.0;
        assert!(ratio >= 1.0, "faster than the cloud allows: {took:?}");
        assert!(
            ratio <= 1.15,
            "{took:?} for a 20 s bound ({ratio:.2}×), {refused} refused"
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn calls_refused_together_cut_the_pace_once() {
        let limiter = RateLimiter::unlimited();
        assert_eq!(limiter.pace(), None, "no pace before a throttle");
        let tickets: Vec<Ticket> = {
            let mut out = Vec::new();
            for _ in 0..50 {
                out.push(limiter.acquire().await);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            out
        };
        // Fifty calls in half a second: about 100 per second sent, and the
        // pace 70% of it.
        for ticket in &tickets[40..] {
            limiter.throttled(*ticket);
        }
        assert_eq!(
            limiter.cuts(),
            1,
            "ten refusals of calls in flight together"
        );
        let pace = limiter.pace().expect("paced after a throttle");
        assert!((55.0..=85.0).contains(&pace), "pace {pace}");
        // A call sent after the cut and refused too cuts again.
        let later = limiter.acquire().await;
        limiter.throttled(later);
        assert_eq!(limiter.cuts(), 2);
        assert!(limiter.pace().expect("paced") < pace);
    }
}
