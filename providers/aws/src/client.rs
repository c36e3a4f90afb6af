//! One place for every call: the error classifier, the client-side rate
//! limit, meridian's retries, call counting, the write journal and
//! idempotency tokens.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_globalaccelerator::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_globalaccelerator::operation::RequestId;
use aws_sdk_globalaccelerator::types::Tag;
use meridian_provider::journal::{self, WriteCall};
use meridian_provider::{CallCounter, Change, ProviderError, RetryPolicy, with_retries};

use crate::AwsProvider;

/// The Global Accelerator operations meridian calls; every other operation
/// is EC2's, and takes its token from the EC2 bucket.
const GA_OPERATIONS: &[&str] = &[
    "ListAccelerators",
    "DescribeAccelerator",
    "CreateAccelerator",
    "UpdateAccelerator",
    "DeleteAccelerator",
    "ListTagsForResource",
    "TagResource",
    "UntagResource",
    "ListListeners",
    "DescribeListener",
    "CreateListener",
    "UpdateListener",
    "DeleteListener",
    "ListEndpointGroups",
    "DescribeEndpointGroup",
    "CreateEndpointGroup",
    "UpdateEndpointGroup",
    "DeleteEndpointGroup",
    "AddEndpoints",
    "RemoveEndpoints",
];

/// Decides what an AWS error means: the one place where error codes become
/// classes. Messages name the operation and the AWS error code.
pub fn classify<E>(
    operation: &str,
    error: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("UnknownError");
            let message = err.message().unwrap_or("no message").to_owned();
            let status = service.raw().status().as_u16();
            match code {
                "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "RequestLimitExceeded"
                | "InternalServiceErrorException"
                | "ServiceUnavailable" => ProviderError::transient(operation, code, message),
                "LimitExceededException" => ProviderError::stalled(
                    operation,
                    code,
                    format!(
                        "{message} (a service quota: raise it in Service Quotas, retrying will not help)"
                    ),
                ),
                "AcceleratorNotDisabledException"
                | "TransactionInProgressException"
                | "IncorrectState" => {
                    ProviderError::waiting(operation, code, Duration::from_secs(2), message)
                }
                _ if code.ends_with("LimitExceeded") => ProviderError::stalled(
                    operation,
                    code,
                    format!(
                        "{message} (a service quota: raise it in Service Quotas, retrying will not help)"
                    ),
                ),
                _ if status >= 500 => ProviderError::transient(operation, code, message),
                _ => ProviderError::stalled(operation, code, message),
            }
        }
        SdkError::TimeoutError(_) => {
            ProviderError::transient(operation, "Timeout", "the call timed out")
        }
        SdkError::DispatchFailure(failure) => {
            // The whole cause chain: "dispatch failure" alone tells a human nothing.
            let context = failure
                .as_connector_error()
                .map(|e| aws_smithy_types::error::display::DisplayErrorContext(e).to_string())
                .unwrap_or_else(|| "no details".to_owned());
            let network = failure.is_io() || failure.is_timeout();
            if !network && context.to_ascii_lowercase().contains("credential") {
                ProviderError::stalled(
                    operation,
                    "NoCredentials",
                    format!(
                        "no usable AWS credentials ({context}); provide them through the standard chain: AWS_PROFILE or the Provider's `profile`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, SSO, web identity or an instance role"
                    ),
                )
            } else if failure.is_user() {
                ProviderError::stalled(
                    operation,
                    "DispatchFailure",
                    format!("the request could not be sent: {context}"),
                )
            } else {
                ProviderError::transient(
                    operation,
                    "DispatchFailure",
                    format!("the request could not be sent: {context}"),
                )
            }
        }
        SdkError::ResponseError(_) => {
            ProviderError::transient(operation, "ResponseError", "the response could not be read")
        }
        SdkError::ConstructionFailure(_) => ProviderError::stalled(
            operation,
            "ConstructionFailure",
            "the request could not be built (missing credentials or region?)",
        ),
        _ => ProviderError::transient(operation, "UnknownError", error.to_string()),
    }
}

pub(crate) fn is_not_found(error: &ProviderError) -> bool {
    error.code.ends_with("NotFoundException") || error.code.ends_with(".NotFound")
}

pub(crate) fn user_tags(tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    tags.iter()
        .filter(|(k, _)| !k.starts_with("meridian.dev/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn suffix(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

pub(crate) fn port(n: Option<i32>) -> u16 {
    n.and_then(|n| u16::try_from(n).ok()).unwrap_or(0)
}

pub(crate) fn tag(key: &str, value: &str) -> Result<Tag, ProviderError> {
    Tag::builder()
        .key(key)
        .value(value)
        .build()
        .map_err(|e| ProviderError::stalled("TagResource", "InvalidTag", e.to_string()))
}

impl AwsProvider {
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

    /// Runs one SDK call with meridian's retries, counting every attempt
    /// and reporting every attempt of a write to the journal.
    pub(crate) async fn run<T, E, F, Fut>(
        &self,
        operation: &str,
        write: bool,
        what: &str,
        mut call: F,
    ) -> Result<T, ProviderError>
    where
        T: RequestId,
        E: ProvideErrorMetadata + std::error::Error,
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
            >,
    {
        self.run_with(&self.config.retry, operation, write, what, &mut call)
            .await
    }

    /// Like [`Self::run`] with an explicit retry policy.
    pub(crate) async fn run_with<T, E, F, Fut>(
        &self,
        policy: &RetryPolicy,
        operation: &str,
        write: bool,
        what: &str,
        call: &mut F,
    ) -> Result<T, ProviderError>
    where
        T: RequestId,
        E: ProvideErrorMetadata + std::error::Error,
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
            >,
    {
        let limiter = if GA_OPERATIONS.contains(&operation) {
            &self.ga_limit
        } else {
            &self.ec2_limit
        };
        with_retries(policy, &self.config.stats, what, || {
            // SDK futures do nothing until polled: the token is taken
            // before the request is sent.
            let attempt = call();
            async move {
                let ticket = limiter.acquire().await;
                // The request id is AWS's `x-amzn-RequestId`, on answers
                // and errors alike; a call that never reached AWS has none.
                let (result, request_id) = match attempt.await {
                    Ok(output) => {
                        let request_id = output.request_id().map(str::to_owned);
                        (Ok(output), request_id)
                    }
                    Err(e) => {
                        let request_id = e.request_id().map(str::to_owned);
                        let mut error = classify(operation, &e);
                        if error.is_throttle() {
                            limiter.throttled(ticket);
                        }
                        error.message = format!("{what}: {}", error.message);
                        (Err(error), request_id)
                    }
                };
                self.count(operation, write, result.is_ok());
                if write {
                    journal::write(WriteCall {
                        operation: operation.to_owned(),
                        request_id,
                        ok: result.is_ok(),
                        error: result.as_ref().err().map(|e| e.code.clone()),
                    });
                }
                result
            }
        })
        .await
    }

    /// Runs a create that has no idempotency token (EC2's Transit Gateway
    /// calls): one attempt at a time, and before every retry `find` looks
    /// for what an attempt whose response was lost may have created, so a
    /// retry never makes a second object.
    pub(crate) async fn create_once<T, E, F, Fut, G, GFut>(
        &self,
        operation: &str,
        what: &str,
        mut create: F,
        mut find: G,
    ) -> Result<T, ProviderError>
    where
        T: RequestId,
        E: ProvideErrorMetadata + std::error::Error,
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
            >,
        G: FnMut() -> GFut,
        GFut: std::future::Future<Output = Result<Option<T>, ProviderError>>,
    {
        let once = RetryPolicy {
            max_attempts: 1,
            max_wait: Duration::ZERO,
            ..self.config.retry.clone()
        };
        let mut attempt = 0u32;
        loop {
            if attempt > 0
                && let Some(found) = find().await?
            {
                return Ok(found);
            }
            match self
                .run_with(&once, operation, true, what, &mut create)
                .await
            {
                Ok(created) => return Ok(created),
                Err(error)
                    if error.is_retryable() && attempt + 1 < self.config.retry.max_attempts =>
                {
                    attempt += 1;
                    let delay = match error.class {
                        meridian_provider::ErrorClass::Waiting { retry_after } => {
                            retry_after.min(self.config.retry.max_poll)
                        }
                        _ => self.config.retry.backoff(attempt),
                    };
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub(crate) fn token(&self, change: &Change) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.config.owner.as_bytes());
        hasher.update(change.address.to_string().as_bytes());
        hasher.update(serde_json::to_vec(&change.after).unwrap_or_default());
        hasher.update(self.run_nonce.to_le_bytes());
        format!("{:x}", hasher.finalize())[..32].to_owned()
    }
}
