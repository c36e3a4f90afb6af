//! What a provider error means, decided in one place.
//!
//! Every provider maps its cloud's errors onto an [`ErrorClass`]; the engine
//! acts only on the class: stalled errors stop and need a human, waiting
//! errors are retried after a known delay, transient ones with jittered
//! exponential backoff. Messages must never contain credentials.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the engine reacts to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "class")]
pub enum ErrorClass {
    /// A human must act (quota, permission, invalid request, conflict with an
    /// object meridian does not own). Never retried.
    Stalled,
    /// The cloud is busy with this object (deploying, not yet disabled); retry
    /// after the given delay.
    Waiting {
        /// How long to wait before the next attempt.
        #[serde(with = "millis")]
        retry_after: Duration,
    },
    /// Throttling, 5xx, timeouts: retry with backoff.
    Transient,
    /// The live object changed since it was observed (a GCP fingerprint
    /// mismatch, a field that no longer holds what the plan saw): the change
    /// must not be retried as planned. The engine re-observes and re-plans;
    /// nothing is overwritten blindly.
    Conflict,
}

/// An error from a provider call.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
#[error("{operation}: {code}: {message}")]
pub struct ProviderError {
    /// How the engine must react.
    pub class: ErrorClass,
    /// The cloud's error code, e.g. `ThrottlingException`.
    pub code: String,
    /// The API operation that failed.
    pub operation: String,
    /// Human-readable explanation naming the resource.
    pub message: String,
}

impl ProviderError {
    /// A stalled error: a human must act.
    pub fn stalled(operation: &str, code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Stalled, operation, code, message)
    }

    /// A transient error: retry with backoff.
    pub fn transient(operation: &str, code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, operation, code, message)
    }

    /// A waiting error: retry after `retry_after`.
    pub fn waiting(
        operation: &str,
        code: &str,
        retry_after: Duration,
        message: impl Into<String>,
    ) -> Self {
        Self::new(
            ErrorClass::Waiting { retry_after },
            operation,
            code,
            message,
        )
    }

    fn new(class: ErrorClass, operation: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            class,
            code: code.to_owned(),
            operation: operation.to_owned(),
            message: message.into(),
        }
    }

    /// A conflict: the object changed since it was observed; re-plan.
    pub fn conflict(operation: &str, code: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Conflict, operation, code, message)
    }

    /// Whether retrying the same call may help.
    pub fn is_retryable(&self) -> bool {
        !matches!(self.class, ErrorClass::Stalled | ErrorClass::Conflict)
    }

    /// Whether the cloud refused the call for its rate: the client should
    /// slow down ([`crate::ratelimit::RateLimiter::throttled`]).
    pub fn is_throttle(&self) -> bool {
        matches!(self.class, ErrorClass::Transient)
            && matches!(
                self.code.as_str(),
                "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "rateLimitExceeded"
                    | "userRateLimitExceeded"
            )
    }

    /// Whether the object changed since it was observed.
    pub fn is_conflict(&self) -> bool {
        matches!(self.class, ErrorClass::Conflict)
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}
