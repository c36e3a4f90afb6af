//! meridian's wire sandbox: the clouds' own APIs over the simulated cloud.
//!
//! One loopback listener serves the AWS Global Accelerator API (`awsJson1_1`
//! at `POST /` with `X-Amz-Target`), the Compute Engine REST API for global
//! load balancing (under `/compute/v1/`), so that meridian's real providers,
//! the official SDKs and the clouds' CLIs all work against it unchanged.
//! `meridian sandbox` serves it on a port; `--sim DIR` starts it in-process
//! on an ephemeral loopback port and points the providers at it.
//!
//! A local emulator, not a cloud: it accepts any signature and checks no
//! credential, so it refuses to listen anywhere but loopback.

pub mod compute;
pub mod ga;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::post;
use meridian_sim::SimCloud;

/// The routes of every API the sandbox serves. `local` is the address the
/// listener is bound to, for the links in responses.
pub fn router(cloud: SimCloud, local: SocketAddr) -> Router {
    Router::new()
        .route("/", post(ga::handle))
        .with_state(cloud.clone())
        .merge(compute::router(cloud, local))
}

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
    tracing::info!(%address, "sandbox serving AWS Global Accelerator (awsJson1_1) at POST / and the Compute Engine REST API at /compute/v1/ over the simulated cloud; it checks no signature or credential");
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
