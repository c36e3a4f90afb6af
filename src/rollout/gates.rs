//! Health gates, checked after each step's bake time.
//!
//! The provider's own health (Global Accelerator endpoint health, GCP
//! backend health, the simulator's) per serving region, against a healthy
//! fraction; and optionally a Prometheus query over its HTTP API against a
//! threshold. A gate catches regressions: a region that was below the
//! threshold when the rollout started (say, the region being drained away
//! from during an outage) does not fail it.

use std::collections::BTreeMap;
use std::time::Duration;

use meridian_provider::Resource;

use crate::model::raw::PrometheusGate;
use crate::plan::schedule::{Live, Rules, subject_of};

/// Healthy fraction per `(subject, region)` of the regions that serve:
/// endpoints of groups with a non-zero dial, backends with a non-zero scaler.
pub fn healthy_fractions(live: &Live) -> BTreeMap<(String, String), f64> {
    let mut counts: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for (address, observed) in live {
        let Some(subject) = subject_of(address) else {
            continue;
        };
        match &observed.resource {
            Resource::Endpoint(endpoint) => {
                let Some(parent) = address.parent() else {
                    continue;
                };
                let Some(Resource::EndpointGroup(group)) = live.get(&parent).map(|g| &g.resource)
                else {
                    continue;
                };
                if group.traffic_dial == 0 || endpoint.weight == 0 {
                    continue;
                }
                let entry = counts.entry((subject, group.region.clone())).or_default();
                entry.1 += 1;
                if observed.health.as_deref().is_none_or(|h| h == "healthy") {
                    entry.0 += 1;
                }
            }
            Resource::Backend(backend) => {
                if backend.capacity_scaler == 0.0 {
                    continue;
                }
                let entry = counts.entry((subject, backend.region.clone())).or_default();
                entry.1 += 1;
                if observed
                    .health
                    .as_deref()
                    .is_none_or(|h| h == "healthy" || h == "unknown")
                {
                    entry.0 += 1;
                }
            }
            _ => {}
        }
    }
    counts
        .into_iter()
        .map(|(k, (healthy, total))| (k, healthy as f64 / total.max(1) as f64))
        .collect()
}

/// Why the health part of a gate fails, if it does.
pub fn health_failures(
    subjects: &BTreeMap<String, Rules>,
    live: &Live,
    baseline: &BTreeMap<String, f64>,
) -> Vec<String> {
    let now = healthy_fractions(live);
    let mut out = Vec::new();
    for ((subject, region), fraction) in &now {
        let Some(rules) = subjects.get(subject) else {
            continue;
        };
        let Some(threshold) = rules.gate.as_ref().and_then(|g| g.min_healthy_fraction) else {
            continue;
        };
        let key = baseline_key(subject, region);
        // A region already below the threshold at the start is not a regression.
        let was = baseline.get(&key).copied().unwrap_or(1.0);
        if *fraction < threshold && was >= threshold {
            out.push(format!(
                "{subject} in {region}: healthy fraction {:.2} is below {threshold} ({}); it was {:.2} when the rollout started",
                fraction,
                rules.source(),
                was
            ));
        }
    }
    out
}

/// The key of a baseline health entry.
pub fn baseline_key(subject: &str, region: &str) -> String {
    format!("{subject}@{region}")
}

/// The baseline health of a live world, for the rollout record.
pub fn baseline(live: &Live) -> BTreeMap<String, f64> {
    healthy_fractions(live)
        .into_iter()
        .map(|((s, r), f)| (baseline_key(&s, &r), f))
        .collect()
}

/// Why a Prometheus query gave no values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Prometheus could not be asked (network, timeout, a 5xx or 429 answer): the
    /// gate cannot be evaluated now, which is no evidence either way.
    Unreachable(String),
    /// Prometheus answered and refused the query, or answered something
    /// that is not a query result: the gate is wrong, or the service is.
    Refused(String),
}

/// Runs a Prometheus instant query; the values of its samples.
pub async fn prometheus_values(gate: &PrometheusGate) -> Result<Vec<f64>, QueryError> {
    let url = format!("{}/api/v1/query", gate.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| QueryError::Unreachable(format!("cannot build an HTTP client: {e}")))?;
    let response = client
        .get(&url)
        .query(&[("query", gate.query.as_str())])
        .send()
        .await
        .map_err(|e| QueryError::Unreachable(format!("querying {url}: {e}")))?;
    let status = response.status();
    // A 5xx (Prometheus answers 503 for a query that timed out) or a 429
    // from a proxy in front of it says nothing about the query.
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(QueryError::Unreachable(format!("{url} answered {status}")));
    }
    // A body cut off or timed out in transit is the network's doing, not
    // the query's; a body that arrived but is not JSON is the service's.
    let bytes = response
        .bytes()
        .await
        .map_err(|e| QueryError::Unreachable(format!("reading the answer of {url}: {e}")))?;
    let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        QueryError::Refused(format!(
            "{url} answered {status} with a body that is not JSON: {e}"
        ))
    })?;
    if body["status"] != "success" {
        return Err(QueryError::Refused(format!(
            "{url} answered {status}: {} {}",
            body["errorType"].as_str().unwrap_or("error"),
            body["error"].as_str().unwrap_or("(no message)")
        )));
    }
    let result = &body["data"]["result"];
    let values = match body["data"]["resultType"].as_str() {
        Some("vector") => result
            .as_array()
            .map(|samples| {
                samples
                    .iter()
                    .filter_map(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()))
                    .collect()
            })
            .unwrap_or_default(),
        Some("scalar") => result[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .into_iter()
            .collect(),
        other => {
            return Err(QueryError::Refused(format!(
                "the query must return an instant vector or a scalar, got {}",
                other.unwrap_or("nothing")
            )));
        }
    };
    Ok(values)
}

/// What the Prometheus part of the gates says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrometheusVerdict {
    /// Why the gate fails: a value out of bounds, a query Prometheus
    /// refused, or no sample (no evidence of health is not health).
    pub failures: Vec<String>,
    /// Queries that could not be asked: the step neither passes nor fails
    /// until they can.
    pub unreachable: Vec<String>,
}

/// What the Prometheus part of the gates says.
pub async fn prometheus_failures(subjects: &BTreeMap<String, Rules>) -> PrometheusVerdict {
    let mut out = Vec::new();
    let mut unreachable = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for rules in subjects.values() {
        let Some(gate) = rules.gate.as_ref().and_then(|g| g.prometheus.as_ref()) else {
            continue;
        };
        if !seen.insert((gate.url.clone(), gate.query.clone())) {
            continue;
        }
        match prometheus_values(gate).await {
            Err(QueryError::Unreachable(error)) => {
                unreachable.push(format!("Prometheus gate of {}: {error}", rules.source()))
            }
            Err(QueryError::Refused(error)) => {
                out.push(format!("Prometheus gate of {}: {error}", rules.source()))
            }
            Ok(values) if values.is_empty() => out.push(format!(
                "Prometheus gate of {}: `{}` returned no samples",
                rules.source(),
                gate.query
            )),
            Ok(values) => {
                for value in values {
                    if gate.max_value.is_some_and(|max| value > max) || value.is_nan() {
                        out.push(format!(
                            "Prometheus gate of {}: `{}` = {value}, above the maximum {}",
                            rules.source(),
                            gate.query,
                            gate.max_value.unwrap_or(f64::NAN)
                        ));
                    }
                    if gate.min_value.is_some_and(|min| value < min) {
                        out.push(format!(
                            "Prometheus gate of {}: `{}` = {value}, below the minimum {}",
                            rules.source(),
                            gate.query,
                            gate.min_value.unwrap_or(f64::NAN)
                        ));
                    }
                }
            }
        }
    }
    PrometheusVerdict {
        failures: out,
        unreachable,
    }
}
