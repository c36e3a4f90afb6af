//! Calls, errors and operations: the one classifier for HTTP and operation
//! errors, the rate limit, meridian's retries, request ids, the write
//! journal, waiting for operations and the compare-and-swap loop.

use std::time::{Duration, Instant};

use google_cloud_compute_v1::model;
use meridian_provider::journal::{self, WriteCall};
use meridian_provider::{CallCounter, Change, ProviderError, with_retries};

use crate::{CAS_ROUNDS, GcpProvider};

/// Decides what a Compute Engine API error means: the one place where HTTP
/// statuses become classes. `what` names the object, `project` the project.
pub fn classify(
    operation: &str,
    what: &str,
    project: &str,
    error: &google_cloud_gax::error::Error,
) -> ProviderError {
    let message = error
        .status()
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| error.to_string());
    if error.is_authentication() {
        return ProviderError::stalled(
            operation,
            "unauthenticated",
            format!(
                "{what}: no usable Google Cloud credentials ({message}); meridian uses Application Default Credentials: run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run with an attached service account"
            ),
        );
    }
    if error.is_timeout() || error.is_io() || error.is_connect() || error.is_transport() {
        return ProviderError::transient(operation, "unavailable", format!("{what}: {message}"));
    }
    match error.http_status_code() {
        Some(429) => {
            ProviderError::transient(operation, "rateLimitExceeded", format!("{what}: {message}"))
        }
        Some(status) if status >= 500 => {
            ProviderError::transient(operation, "backendError", format!("{what}: {message}"))
        }
        Some(412) => ProviderError::conflict(
            operation,
            "conditionNotMet",
            format!("{what} changed since it was read (fingerprint mismatch): {message}"),
        ),
        Some(409) => {
            ProviderError::stalled(operation, "alreadyExists", format!("{what}: {message}"))
        }
        Some(404) => ProviderError::stalled(
            operation,
            "notFound",
            format!("{what} was not found in project `{project}`: {message}"),
        ),
        // A rate quota (per-minute window) used up: "a 403 error with the
        // reason rateLimitExceeded"; it refills at the next minute.
        Some(403)
            if {
                let lower = message.to_ascii_lowercase();
                lower.contains("ratelimitexceeded")
                    || lower.contains("rate limit")
                    || lower.contains("per minute")
            } =>
        {
            ProviderError::transient(operation, "rateLimitExceeded", format!("{what}: {message}"))
        }
        Some(403) if message.to_ascii_lowercase().contains("quota") => ProviderError::stalled(
            operation,
            "quotaExceeded",
            format!(
                "{what}: {message} (a quota of project `{project}`: raise it in the console under IAM & Admin > Quotas; retrying will not help)"
            ),
        ),
        Some(403) => ProviderError::stalled(
            operation,
            "forbidden",
            format!(
                "{what}: permission denied in project `{project}`: {message} (the credentials need roles/compute.loadBalancerAdmin on the project, see docs/gcp.md)"
            ),
        ),
        Some(401) => ProviderError::stalled(
            operation,
            "unauthenticated",
            format!("{what}: the credentials were refused: {message}"),
        ),
        Some(400) if message.contains("being used by") || message.contains("in use") => {
            ProviderError::stalled(
                operation,
                "resourceInUseByAnotherResource",
                format!("{what}: {message}"),
            )
        }
        Some(status) => ProviderError::stalled(
            operation,
            &format!("http{status}"),
            format!("{what}: {message}"),
        ),
        None if error.is_deserialization() => ProviderError::stalled(
            operation,
            "badResponse",
            format!("{what}: the response could not be read: {message}"),
        ),
        None => ProviderError::stalled(operation, "error", format!("{what}: {message}")),
    }
}

/// Decides what a failed long-running operation means. Transient operation
/// errors are retried by re-running the whole write, which is safe because
/// every write first compares the live object with what it wants.
pub fn classify_operation(operation: &str, what: &str, done: &model::Operation) -> ProviderError {
    let first = done
        .error
        .as_ref()
        .and_then(|e| e.errors.first())
        .cloned()
        .unwrap_or_default();
    let code = first.code.clone().unwrap_or_else(|| "UNKNOWN".to_owned());
    let detail = first.message.clone().unwrap_or_default();
    let status = done.http_error_status_code.unwrap_or(0);
    let name = done.name.clone().unwrap_or_default();
    let message = format!("{what}: operation {name} failed: {code}: {detail}");
    match code.as_str() {
        "QUOTA_EXCEEDED" => ProviderError::stalled(
            operation,
            &code,
            format!(
                "{message} (a quota: raise it in the console under IAM & Admin > Quotas; retrying will not help)"
            ),
        ),
        "CONDITION_NOT_MET" => ProviderError::conflict(operation, &code, message),
        "RESOURCE_NOT_READY"
        | "INTERNAL_ERROR"
        | "RATE_LIMIT_EXCEEDED"
        | "SERVICE_UNAVAILABLE"
        | "TIMEOUT"
        | "RESOURCE_OPERATION_RATE_EXCEEDED" => ProviderError::transient(operation, &code, message),
        _ if status == 429 || status >= 500 => ProviderError::transient(operation, &code, message),
        _ => ProviderError::stalled(operation, &code, message),
    }
}

/// What went wrong in one compare-and-swap round.
pub(crate) enum Round {
    /// Done.
    Done,
    /// The object changed between the read and the write: read again.
    Raced,
}

impl GcpProvider {
    pub(crate) fn count(&self, operation: &str, write: bool, ok: bool) {
        if let Ok(mut calls) = self.calls.lock() {
            let counter = calls
                .entry(operation.to_owned())
                .or_insert_with(|| CallCounter {
                    operation: operation.to_owned(),
                    write,
                    ok: 0,
                    failed: 0,
                });
            if ok {
                counter.ok += 1;
            } else {
                counter.failed += 1;
            }
        }
    }

    /// One API call, counted and classified, without retries.
    pub(crate) async fn call<T, Fut>(
        &self,
        operation: &str,
        write: bool,
        what: &str,
        call: Fut,
    ) -> Result<T, ProviderError>
    where
        Fut: std::future::Future<Output = Result<T, google_cloud_gax::error::Error>>,
    {
        let ticket = self.limiter.acquire().await;
        let result = call.await;
        self.count(operation, write, result.is_ok());
        result.map_err(|e| {
            let error = classify(operation, what, self.project(), &e);
            if error.is_throttle() {
                self.limiter.throttled(ticket);
            }
            error
        })
    }

    /// A read, retried by meridian's policy.
    pub(crate) async fn read<T, F, Fut>(
        &self,
        operation: &str,
        what: &str,
        call: F,
    ) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, google_cloud_gax::error::Error>>,
    {
        with_retries(&self.config.retry, &self.config.stats, what, || {
            self.call(operation, false, what, call())
        })
        .await
    }

    /// A request id for a write: the same for every retry of one change in
    /// one run, so the API ignores a repeat of a write that already landed.
    pub(crate) fn request_id(&self, change: &Change, round: u32) -> String {
        self.request_id_of(
            &[
                change.address.to_string(),
                serde_json::to_string(&change.after).unwrap_or_default(),
            ],
            round,
        )
    }

    /// A request id for the write identified by `parts`, in one round.
    pub(crate) fn request_id_of(&self, parts: &[String], round: u32) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        use std::hash::{Hash, Hasher};
        self.config.owner.hash(&mut hasher);
        for part in parts {
            part.hash(&mut hasher);
        }
        self.run_nonce.hash(&mut hasher);
        let a = hasher.finish();
        round.hash(&mut hasher);
        let b = hasher.finish();
        // A version-4-shaped UUID, as the API requires.
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    /// Waits for an operation to be `DONE` and surfaces its error.
    pub(crate) async fn wait(
        &self,
        operation: &str,
        what: &str,
        started: model::Operation,
    ) -> Result<(), ProviderError> {
        let name = started.name.clone().unwrap_or_default();
        let deadline = Instant::now() + self.config.retry.max_wait.max(Duration::from_secs(60));
        let mut current = started;
        loop {
            let done = current
                .status
                .as_ref()
                .is_some_and(|s| *s == model::operation::Status::Done);
            if done {
                if current.error.as_ref().is_some_and(|e| !e.errors.is_empty()) {
                    return Err(classify_operation(operation, what, &current));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ProviderError::transient(
                    operation,
                    "operationTimeout",
                    format!(
                        "{what}: operation {name} is still not DONE; it may still land, and the next run continues from live state"
                    ),
                ));
            }
            let project = self.project().to_owned();
            let op_name = name.clone();
            current = self
                .read(
                    "globalOperations.wait",
                    &format!("wait for operation {name} ({what})"),
                    || {
                        self.operations
                            .wait()
                            .set_project(project.clone())
                            .set_operation(op_name.clone())
                            .send()
                    },
                )
                .await?;
        }
    }

    /// Runs `round` (read, compare, write, wait) until it is done, retrying
    /// transient errors and failed operations by meridian's policy and
    /// re-reading up to [`CAS_ROUNDS`] times when the object changed between
    /// its read and its write.
    pub(crate) async fn converge<F, Fut>(&self, what: &str, round: F) -> Result<(), ProviderError>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = Result<Round, ProviderError>>,
    {
        let raced = std::sync::atomic::AtomicU32::new(0);
        // Every attempt gets its own request id: the API answers a repeated
        // id with the first attempt's operation, and after a failed
        // operation that would be the failure again. Duplicates are
        // prevented by each round's read-and-compare instead.
        let attempts = std::sync::atomic::AtomicU32::new(0);
        with_retries(&self.config.retry, &self.config.stats, what, || async {
            loop {
                let n = raced.load(std::sync::atomic::Ordering::SeqCst);
                let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match round(attempt).await {
                    Ok(Round::Done) => return Ok(()),
                    Ok(Round::Raced) if n + 1 < CAS_ROUNDS => {
                        raced.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tracing::info!(%what, "the object changed between read and write; reading it again");
                    }
                    Ok(Round::Raced) => {
                        return Err(ProviderError::conflict(
                            "write",
                            "conditionNotMet",
                            format!("{what} kept changing under meridian ({CAS_ROUNDS} reads in a row were stale by the time of the write)"),
                        ));
                    }
                    Err(error) => return Err(error),
                }
            }
        })
        .await
    }

    /// A write whose answer is an operation: sends it once, waits for DONE.
    /// A 412 is a race (read again), not an error. `request_id` is the
    /// `requestId` `send` carries: the id a human looks the write up by.
    ///
    /// The one path of every Compute write, so the one place that reports
    /// writes to the journal: one entry per attempt, `ok` once the write
    /// landed (its operation ended `DONE` without error), else the code of
    /// what stopped it (the HTTP error, the operation's error, or the wait
    /// that never saw it end).
    pub(crate) async fn write_op<Fut>(
        &self,
        operation: &str,
        what: &str,
        request_id: &str,
        send: Fut,
    ) -> Result<Round, ProviderError>
    where
        Fut: std::future::Future<Output = Result<model::Operation, google_cloud_gax::error::Error>>,
    {
        let (outcome, raced) = match self.call(operation, true, what, send).await {
            Ok(started) => (self.wait(operation, what, started).await, false),
            Err(error) => {
                let raced = error.code == "conditionNotMet";
                (Err(error), raced)
            }
        };
        journal::write(WriteCall {
            operation: operation.to_owned(),
            request_id: Some(request_id.to_owned()),
            ok: outcome.is_ok(),
            error: outcome.as_ref().err().map(|e| e.code.clone()),
        });
        match outcome {
            Ok(()) => Ok(Round::Done),
            Err(_) if raced => Ok(Round::Raced),
            Err(error) => Err(error),
        }
    }
}
