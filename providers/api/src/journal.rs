//! The write journal: which cloud write calls a unit of work made, each
//! with the request id the cloud knows it by, so an audit trail can name
//! every write and a human can find it in the cloud's own logs.
//!
//! The engine runs a unit inside [`recording`]; the providers' central call
//! wrappers report each write attempt with [`write`] (retries included:
//! every attempt is a call). Reads are never reported. The journal lives in
//! a tokio task-local, so the provider trait stays as narrow as it is, and
//! `write` outside a recording is a no-op.
//!
//! A task-local does not cross `tokio::spawn`: a provider that spawns work
//! inside `apply` must run the spawned future in its own [`recording`] and
//! hand the calls back with [`write`] once it is joined. It must never hold
//! the journal across an `.await` (every borrow here ends before `write`
//! returns).

use std::cell::RefCell;
use std::future::Future;

use serde::{Deserialize, Serialize};

tokio::task_local! {
    /// The calls recorded by the innermost [`recording`] of this task.
    static JOURNAL: RefCell<Vec<WriteCall>>;
}

/// One write call a provider made while carrying out a unit of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCall {
    /// The cloud operation, e.g. `UpdateEndpointGroup`, `backendServices.patch`.
    pub operation: String,
    /// The id the cloud knows the call by: AWS's `x-amzn-RequestId`, the
    /// `requestId` meridian sent to GCP; `None` when the call never reached
    /// the cloud (or its answer named none).
    pub request_id: Option<String>,
    /// Whether the call succeeded.
    pub ok: bool,
    /// The error code, e.g. `ThrottlingException`, when `!ok`.
    pub error: Option<String>,
}

/// Runs `f` recording the write calls made inside it (same task) and
/// returns them with its output, in the order they were made.
///
/// A recording inside another one keeps its calls to itself while it runs
/// and then reports them to the outer one too, so no write is hidden from
/// an outer recorder.
pub async fn recording<F: Future>(f: F) -> (F::Output, Vec<WriteCall>) {
    let (output, calls) = JOURNAL
        .scope(RefCell::new(Vec::new()), async move {
            let output = f.await;
            (output, JOURNAL.with(RefCell::take))
        })
        .await;
    if !calls.is_empty() {
        let _ = JOURNAL.try_with(|outer| outer.borrow_mut().extend(calls.iter().cloned()));
    }
    (output, calls)
}

/// Called by providers' central call wrappers for every write attempt
/// (retries included: each attempt is a call). A no-op outside
/// [`recording`].
pub fn write(call: WriteCall) {
    let _ = JOURNAL.try_with(|calls| calls.borrow_mut().push(call));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(operation: &str, request_id: &str, ok: bool) -> WriteCall {
        WriteCall {
            operation: operation.to_owned(),
            request_id: Some(request_id.to_owned()),
            ok,
            error: (!ok).then(|| "ThrottlingException".to_owned()),
        }
    }

    #[tokio::test]
    async fn recording_collects_the_writes_in_order_with_the_output() {
        let (output, calls) = recording(async {
            write(call("UpdateEndpointGroup", "r-1", false));
            write(call("UpdateEndpointGroup", "r-2", true));
            7
        })
        .await;
        assert_eq!(output, 7);
        assert_eq!(
            calls,
            [
                call("UpdateEndpointGroup", "r-1", false),
                call("UpdateEndpointGroup", "r-2", true)
            ]
        );
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn writes_after_awaits_and_in_nested_futures_are_recorded() {
        async fn inner() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            write(call("AddEndpoints", "r-2", true));
            tokio::task::yield_now().await;
        }
        let ((), calls) = recording(async {
            write(call("CreateEndpointGroup", "r-1", true));
            inner().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            write(call("RemoveEndpoints", "r-3", true));
        })
        .await;
        let ids: Vec<_> = calls.iter().filter_map(|c| c.request_id.clone()).collect();
        assert_eq!(ids, ["r-1", "r-2", "r-3"]);
    }

    #[tokio::test]
    async fn a_nested_recording_reports_its_calls_to_the_outer_one() {
        let ((), outer) = recording(async {
            write(call("TagResource", "r-1", true));
            let ((), inner) = recording(async {
                write(call("UpdateAccelerator", "r-2", true));
            })
            .await;
            assert_eq!(inner, [call("UpdateAccelerator", "r-2", true)]);
        })
        .await;
        assert_eq!(
            outer,
            [
                call("TagResource", "r-1", true),
                call("UpdateAccelerator", "r-2", true)
            ]
        );
    }

    #[tokio::test]
    async fn recordings_in_separate_tasks_do_not_mix() {
        let one = tokio::spawn(recording(async {
            tokio::task::yield_now().await;
            write(call("CreateListener", "a", true));
        }));
        let two = tokio::spawn(recording(async {
            write(call("DeleteListener", "b", true));
            tokio::task::yield_now().await;
        }));
        let ((), one) = one.await.expect("task");
        let ((), two) = two.await.expect("task");
        assert_eq!(one, [call("CreateListener", "a", true)]);
        assert_eq!(two, [call("DeleteListener", "b", true)]);
    }

    #[tokio::test]
    async fn a_write_outside_a_recording_is_a_no_op() {
        write(call("DeleteAccelerator", "r-1", true));
        let ((), calls) = recording(async {}).await;
        assert!(calls.is_empty());
    }

    #[test]
    fn a_write_outside_any_runtime_does_not_panic() {
        write(call("DeleteAccelerator", "r-1", true));
    }
}
