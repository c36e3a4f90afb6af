//! The providers of a desired state: one plugin per `Provider` document,
//! built from its settings, kept by name for observation and apply.
//!
//! Under `--sim DIR` every provider runs against the embedded simulated
//! cloud, through the clouds' own wire protocols served in-process. This
//! module builds clients; it never observes or writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use meridian_provider::ratelimit::Rate;
use meridian_provider::{CallCounter, Provider, ProviderError, RetryPolicy, RetryStats};
use meridian_sandbox::InProcess;
use meridian_sim::{SimCloud, SimStore};

use crate::model::DesiredState;
use crate::model::raw::ProviderType;

/// Errors of the engine (as opposed to policy blocks or change failures).
#[derive(Debug, thiserror::Error)]
pub enum ProvidersError {
    /// A provider cannot be built.
    #[error("provider `{provider}`: {message}")]
    Provider {
        /// Provider name.
        provider: String,
        /// Why.
        message: String,
    },
    /// The simulated cloud's directory is unusable.
    #[error(transparent)]
    Sim(#[from] meridian_sim::StoreError),
}

/// How the engine runs.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Run every provider against the simulated cloud in this directory.
    pub sim_dir: Option<PathBuf>,
    /// Retry policy for cloud calls.
    pub retry: RetryPolicy,
}

/// A check that this process may still write: the leader's fence when
/// several replicas run (see `daemon::election`). Every unit of work asks
/// it first; a refusal writes nothing.
#[async_trait::async_trait]
pub trait Fence: Send + Sync {
    /// `Err` with the reason when writing must stop.
    async fn check(&self) -> Result<(), String>;
    /// Resolves once writing must stop: a unit still running then is
    /// cancelled before its next call.
    async fn lost(&self);
}

/// The providers of a desired state, by name.
pub struct Providers {
    /// The write fence, when writes are fenced.
    pub fence: Option<Arc<dyn Fence>>,
    /// The audit trail every write call is recorded in, when one is kept.
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    pub(crate) by_name: BTreeMap<String, Arc<dyn Provider>>,
    pub(crate) concurrency: BTreeMap<String, usize>,
    /// Retry counters shared by every provider.
    pub stats: RetryStats,
    /// The in-process sandbox under `--sim`, kept running as long as the
    /// providers that call it.
    _sandbox: Option<InProcess>,
}

/// How often the providers poll the simulated cloud for an object to settle.
const SIM_POLL: std::time::Duration = std::time::Duration::from_millis(200);

impl Providers {
    /// Providers from instances already made, each with a concurrency of
    /// one (tests, and providers built outside [`Providers::build`]).
    pub fn from_instances(instances: Vec<Arc<dyn Provider>>) -> Self {
        let by_name: BTreeMap<String, Arc<dyn Provider>> = instances
            .into_iter()
            .map(|p| (p.name().to_owned(), p))
            .collect();
        let concurrency = by_name.keys().map(|n| (n.clone(), 1)).collect();
        Self {
            fence: None,
            audit: None,
            by_name,
            concurrency,
            stats: RetryStats::default(),
            _sandbox: None,
        }
    }

    /// Builds one provider per `Provider` document, the real one for its
    /// type. Under `--sim DIR` the simulated cloud in DIR is served by the
    /// wire sandbox in this process, on an ephemeral loopback port, and
    /// every provider's endpoints point there: the code that talks to AWS
    /// and Google is the code that runs.
    pub async fn build(
        state: &DesiredState,
        options: &ProviderOptions,
    ) -> Result<Self, ProvidersError> {
        let stats = RetryStats::default();
        let mut by_name: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        let mut concurrency = BTreeMap::new();
        let sandbox = match &options.sim_dir {
            Some(dir) => {
                let cloud = SimCloud::new(SimStore::open(dir)?);
                Some(
                    InProcess::start(cloud)
                        .await
                        .map_err(|e| ProvidersError::Provider {
                            provider: "(simulated cloud)".to_owned(),
                            message: format!("cannot start the in-process sandbox: {e}"),
                        })?,
                )
            }
            None => None,
        };
        let mut retry = options.retry.clone();
        if sandbox.is_some() {
            // The simulated cloud deploys in about a second: poll it often.
            retry.max_poll = retry.max_poll.min(SIM_POLL);
        }
        for doc in &state.providers {
            let spec = &doc.doc.spec;
            let name = doc.name().to_owned();
            let owner = spec.owner.clone().unwrap_or_else(|| name.clone());
            concurrency.insert(
                name.clone(),
                spec.max_concurrency.unwrap_or(4).clamp(1, 32) as usize,
            );
            let endpoints = spec.endpoints.as_ref();
            let rate_limit = spec.rate_limit.as_ref().map(|r| Rate {
                per_second: r.requests_per_second,
                burst: r.burst,
            });
            let sim_url = sandbox.as_ref().map(InProcess::url);
            let provider: Arc<dyn Provider> = match spec.provider_type {
                ProviderType::Aws => Arc::new(
                    meridian_aws::AwsProvider::new(meridian_aws::AwsConfig {
                        name: name.clone(),
                        owner,
                        profile: spec.profile.clone(),
                        globalaccelerator_endpoint: sim_url
                            .clone()
                            .or_else(|| endpoints.and_then(|e| e.globalaccelerator.clone())),
                        ec2_endpoint: sim_url.or_else(|| endpoints.and_then(|e| e.ec2.clone())),
                        rate_limit,
                        retry: retry.clone(),
                        stats: stats.clone(),
                    })
                    .await,
                ),
                ProviderType::Gcp => {
                    let Some(project) = spec.project.clone() else {
                        return Err(ProvidersError::Provider {
                            provider: name,
                            message:
                                "a provider of type gcp needs `spec.project`, the GCP project id"
                                    .to_owned(),
                        });
                    };
                    let config = meridian_gcp::GcpConfig {
                        name: name.clone(),
                        owner,
                        project,
                        endpoint: sim_url.or_else(|| endpoints.and_then(|e| e.compute.clone())),
                        rate_limit,
                        retry: retry.clone(),
                        stats: stats.clone(),
                    };
                    match meridian_gcp::GcpProvider::new(config).await {
                        Ok(provider) => Arc::new(provider),
                        Err(error) => {
                            return Err(ProvidersError::Provider {
                                provider: name,
                                message: error.message,
                            });
                        }
                    }
                }
            };
            by_name.insert(name, provider);
        }
        Ok(Self {
            fence: None,
            audit: None,
            by_name,
            concurrency,
            stats,
            _sandbox: sandbox,
        })
    }

    /// API calls made so far, by provider.
    pub fn calls(&self) -> BTreeMap<String, Vec<CallCounter>> {
        self.by_name
            .iter()
            .map(|(name, p)| (name.clone(), p.calls()))
            .collect()
    }

    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// Writes (`Some(until)`) or removes (`None`) the break-glass override
    /// marker on `address` through the provider named `provider`.
    pub async fn set_override(
        &self,
        provider: &str,
        address: &meridian_provider::Address,
        until: Option<String>,
        was: Option<String>,
    ) -> Result<(), ProviderError> {
        let Some(p) = self.get(provider) else {
            return Err(ProviderError::stalled(
                "SetOverride",
                "UnknownProvider",
                format!("no provider named `{provider}`"),
            ));
        };
        let change = crate::audit::AuditChange {
            address: address.to_string(),
            action: "update".to_owned(),
            fields: vec![meridian_provider::FieldChange {
                path: "override.until".to_owned(),
                before: was.map(serde_json::Value::String),
                after: until.clone().map(serde_json::Value::String),
            }],
        };
        self.audited(provider, address, &[change], p.set_override(address, until))
            .await
    }

    /// Runs `write` (calls of one provider on `object`), recording its
    /// write calls in the audit trail when one is kept. A line that cannot
    /// be written is logged as an error; the write it describes stands.
    pub async fn audited<T>(
        &self,
        provider: &str,
        object: &meridian_provider::Address,
        changes: &[crate::audit::AuditChange],
        write: impl std::future::Future<Output = T>,
    ) -> T {
        let Some(audit) = &self.audit else {
            return write.await;
        };
        let (output, calls) = meridian_provider::journal::recording(write).await;
        if let Err(error) = audit.record(provider, object, changes, &calls).await {
            tracing::error!(%error, trail = %audit.describe(), "cannot append to the audit trail");
        }
        output
    }
}
