//! meridian's wire sandbox: the clouds' own APIs over the simulated cloud.
//!
//! One loopback listener serves the AWS Global Accelerator API (`awsJson1_1`
//! at `POST /` with `X-Amz-Target`, [`ga`]), the EC2 Query API's Transit
//! Gateway subset (`POST /` with a form body `Action=…&Version=2016-11-15`,
//! region from the SigV4 credential scope, [`ec2`]) and the Compute Engine
//! REST API for global load balancing (under `/compute/v1/`, [`compute`]),
//! so that meridian's real providers, the official SDKs and the clouds' CLIs
//! all work against it unchanged. `meridian sandbox` serves it on a port;
//! `--sim DIR` starts it in-process on an ephemeral loopback port and points
//! the providers at it.
//!
//! A local emulator, not a cloud: every behaviour (ids, states, quotas,
//! faults, call counts) is the simulated cloud's, and the sandbox only
//! speaks the protocols; it must never keep objects of its own. It accepts
//! any signature and checks no credential, so it refuses to listen anywhere
//! but loopback.

pub mod compute;
pub mod ec2;
pub mod ga;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use meridian_sim::SimCloud;

/// The routes of every API the sandbox serves. `local` is the address the
/// listener is bound to, for the links in responses.
pub fn router(cloud: SimCloud, local: SocketAddr) -> Router {
    Router::new()
        .route("/", post(aws_root))
        .with_state(cloud.clone())
        .merge(compute::router(cloud, local))
}

/// `POST /` is both AWS protocols' endpoint: a JSON request names its
/// operation in `X-Amz-Target` (Global Accelerator), a Query request in
/// its form body's `Action` (EC2). Anything else is answered by the JSON
/// protocol, which explains the missing target.
async fn aws_root(State(cloud): State<SimCloud>, headers: HeaderMap, body: Bytes) -> Response {
    if !headers.contains_key("x-amz-target") && ec2::is_query_request(&headers, &body) {
        ec2::handle(State(cloud), headers, body).await
    } else {
        ga::handle(State(cloud), headers, body).await
    }
}

/// A fresh request id, shaped as AWS's (a version-4 UUID): what each AWS
/// answer carries in `x-amzn-RequestId` (and EC2's in `<requestId>`), and
/// what a Compute write without a `requestId` is recorded under.
pub(crate) fn request_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        0x8000 | fastrand::u16(..0x4000),
        fastrand::u64(..1 << 48)
    )
}

/// The header AWS names a request's id in, on answers and errors alike.
pub(crate) const REQUEST_ID_HEADER: &str = "x-amzn-requestid";

fn refuse_non_loopback(listen: SocketAddr) -> std::io::Result<()> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "the sandbox accepts unsigned requests and must listen on loopback (127.0.0.1 or ::1), not {listen}"
        ),
    ))
}

/// Serves the sandbox on `listen` until SIGTERM/SIGINT.
pub async fn serve(cloud: SimCloud, listen: SocketAddr) -> std::io::Result<()> {
    refuse_non_loopback(listen)?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    println!("meridian: sandbox listening on {address}");
    tracing::info!(%address, "sandbox serving AWS Global Accelerator (awsJson1_1) and EC2 Transit Gateway (Query) at POST / and the Compute Engine REST API at /compute/v1/ over the simulated cloud; it checks no signature or credential");
    axum::serve(listener, router(cloud, address))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// A sandbox running inside this process, on an ephemeral loopback port;
/// it stops when dropped.
#[derive(Debug)]
pub struct InProcess {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    /// Starts the sandbox over `cloud` on `127.0.0.1:0`.
    pub async fn start(cloud: SimCloud) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let app = router(cloud, address);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "the in-process sandbox stopped");
            }
        });
        tracing::debug!(%address, "in-process sandbox started");
        Ok(Self { address, task })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}
