//! Leader election and fencing on etcd, for several `meridian run`
//! replicas: exactly one of them (the leader) plans and writes.
//!
//! The recipe is etcd's own (the `concurrency` package's election): each
//! replica holds a lease and tries to create the election key bound to it
//! in a transaction that succeeds only if the key does not exist. The
//! winner's **term** is the key's create revision, which etcd makes unique
//! and increasing. Before every write batch, and with every write of shared
//! state, the leader runs a transaction comparing the key's create revision
//! with its term (and the key's value with its identity): if a newer leader
//! exists, the comparison fails and nothing is written. A replica paused
//! past its lease (SIGSTOP, a long GC, a partition) therefore never writes
//! after it resumes.
//!
//! meridian speaks to etcd through etcd's JSON gateway (`/v3/…`, the gRPC
//! API over HTTP): see docs/decisions/0007-etcd-over-its-json-gateway.md.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// Where the election lives: `etcd://HOST:PORT[,HOST:PORT…][/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTarget {
    /// Client URLs, tried in order.
    pub endpoints: Vec<String>,
    /// Key prefix for the election and shared state.
    pub prefix: String,
}

impl EtcdTarget {
    /// Reads an `etcd://` URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.strip_prefix("etcd://").ok_or_else(|| {
            format!("`{text}` is not an etcd URL: use etcd://HOST:PORT[,HOST:PORT…][/PREFIX]")
        })?;
        let (hosts, prefix) = match rest.split_once('/') {
            Some((hosts, prefix)) => (hosts, prefix.trim_end_matches('/')),
            None => (rest, ""),
        };
        let endpoints: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("http://{h}"))
            .collect();
        if endpoints.is_empty() {
            return Err(format!("`{text}` names no etcd endpoint"));
        }
        for endpoint in &endpoints {
            let host = endpoint.trim_start_matches("http://");
            if host
                .rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                return Err(format!("`{host}` in `{text}` is not HOST:PORT"));
            }
        }
        let prefix = if prefix.is_empty() {
            "meridian".to_owned()
        } else {
            prefix.to_owned()
        };
        Ok(Self { endpoints, prefix })
    }
}

/// An etcd cluster, through its JSON gateway.
#[derive(Debug, Clone)]
pub struct Etcd {
    target: EtcdTarget,
    http: reqwest::Client,
}

/// An etcd call that did not get an answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("etcd at {endpoints}: {message}")]
pub struct EtcdError {
    endpoints: String,
    message: String,
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn number(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

impl Etcd {
    /// A client of `target`.
    pub fn new(target: EtcdTarget) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_default();
        Self { target, http }
    }

    /// The full key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.target.prefix)
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let mut last = String::new();
        for endpoint in &self.target.endpoints {
            match self
                .http
                .post(format!("{endpoint}{path}"))
                .json(&body)
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => {
                    return response.json().await.map_err(|e| self.error(e.to_string()));
                }
                Ok(response) => {
                    let status = response.status();
                    last = format!(
                        "{path}: HTTP {status}: {}",
                        response.text().await.unwrap_or_default()
                    );
                }
                Err(e) => last = format!("{path}: {e}"),
            }
        }
        Err(self.error(last))
    }

    fn error(&self, message: String) -> EtcdError {
        EtcdError {
            endpoints: self.target.endpoints.join(","),
            message,
        }
    }

    /// A new lease of `ttl`; its id.
    pub async fn grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        let seconds = ttl.as_secs_f64().ceil().max(1.0) as u64;
        let answer = self
            .call("/v3/lease/grant", json!({"TTL": seconds}))
            .await?;
        match number(&answer["ID"]) {
            id if id > 0 => Ok(id),
            _ => Err(self.error(format!(
                "/v3/lease/grant answered without a lease id: {answer}"
            ))),
        }
    }

    /// Renews a lease; `false` when it has expired.
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, EtcdError> {
        let answer = self
            .call("/v3/lease/keepalive", json!({"ID": lease.to_string()}))
            .await?;
        Ok(number(&answer["result"]["TTL"]) > 0)
    }

    /// Ends a lease (and the keys bound to it).
    pub async fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({"ID": lease.to_string()}))
            .await
            .map(|_| ())
    }

    /// A key's value and create revision.
    pub async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, EtcdError> {
        let answer = self
            .call("/v3/kv/range", json!({"key": b64(key.as_bytes())}))
            .await?;
        Ok(answer["kvs"]
            .as_array()
            .and_then(|kvs| kvs.first())
            .map(|kv| {
                (
                    B64.decode(kv["value"].as_str().unwrap_or_default())
                        .unwrap_or_default(),
                    number(&kv["create_revision"]),
                )
            }))
    }

    /// Creates `key` = `value` on `lease` if it does not exist; the new
    /// key's create revision when it was created.
    pub async fn create(
        &self,
        key: &str,
        value: &str,
        lease: i64,
    ) -> Result<Option<i64>, EtcdError> {
        let k = b64(key.as_bytes());
        let answer = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                    "success": [{"request_put": {"key": k, "value": b64(value.as_bytes()), "lease": lease.to_string()}}],
                }),
            )
            .await?;
        Ok((answer["succeeded"] == json!(true)).then(|| number(&answer["header"]["revision"])))
    }

    /// Writes `key` = `value` (no lease, no condition).
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), EtcdError> {
        self.call(
            "/v3/kv/put",
            json!({"key": b64(key.as_bytes()), "value": b64(value)}),
        )
        .await
        .map(|_| ())
    }

    /// Every value under `prefix`, in key order, read a page at a time.
    pub async fn values_under(&self, prefix: &str) -> Result<Vec<Vec<u8>>, EtcdError> {
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut from = prefix.as_bytes().to_vec();
        let mut out = Vec::new();
        loop {
            let answer = self
                .call(
                    "/v3/kv/range",
                    json!({"key": b64(&from), "range_end": b64(&end), "limit": "500"}),
                )
                .await?;
            let kvs = answer["kvs"].as_array().cloned().unwrap_or_default();
            for kv in &kvs {
                out.push(
                    B64.decode(kv["value"].as_str().unwrap_or_default())
                        .unwrap_or_default(),
                );
            }
            let more = answer["more"] == json!(true);
            match kvs.last() {
                Some(last) if more => {
                    from = B64
                        .decode(last["key"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                    from.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Runs `puts` only while `key` still is `value` created at `revision`
    /// (the leader's term); `false` when it is not.
    pub async fn fenced(
        &self,
        key: &str,
        value: &str,
        revision: i64,
        puts: &[(String, Vec<u8>)],
    ) -> Result<bool, EtcdError> {
        let k = b64(key.as_bytes());
        let success: Vec<Value> = puts
            .iter()
            .map(|(key, value)| json!({"request_put": {"key": b64(key.as_bytes()), "value": b64(value)}}))
            .collect();
        let answer = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [
                        {"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": revision.to_string()},
                        {"key": k, "target": "VALUE", "result": "EQUAL", "value": b64(value.as_bytes())},
                    ],
                    "success": success,
                }),
            )
            .await?;
        Ok(answer["succeeded"] == json!(true))
    }
}

/// Election timings, as controller-runtime names them.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// How long a leader's lease lasts without renewal.
    pub lease: Duration,
    /// How long a leader keeps acting without a successful renewal.
    pub renew_deadline: Duration,
    /// How often leaders renew and followers try to take over.
    pub retry: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// This replica's part in the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Plans and writes.
    Leader,
    /// Watches Git and serves reads; takes over when the leader's lease ends.
    Follower,
    /// Cannot reach etcd: serves reads, writes nothing.
    Unreachable,
}

impl Role {
    /// Its name in status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Unreachable => "unreachable",
        }
    }
}

/// What the replica knows of the election.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Standing {
    /// This replica's identity.
    pub identity: String,
    /// Its role.
    pub role: Role,
    /// The current leader's identity, when known.
    pub leader: Option<String>,
    /// The current leader's term (the election key's create revision).
    pub term: Option<i64>,
    /// Why this replica last stepped down, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stepped_down: Option<String>,
}

#[derive(Debug)]
struct Held {
    lease: i64,
    term: i64,
    renewed: Instant,
}

/// One replica's election: campaigns, renews, steps down, and fences.
#[derive(Debug)]
pub struct Election {
    etcd: Etcd,
    timings: Timings,
    identity: String,
    standing: Mutex<Standing>,
    held: Mutex<Option<Held>>,
}

impl Election {
    /// A replica named `identity` in the election at `target`.
    pub fn new(target: EtcdTarget, identity: String, timings: Timings) -> Arc<Self> {
        Arc::new(Self {
            etcd: Etcd::new(target),
            timings,
            standing: Mutex::new(Standing {
                identity: identity.clone(),
                role: Role::Follower,
                leader: None,
                term: None,
                stepped_down: None,
            }),
            identity,
            held: Mutex::new(None),
        })
    }

    /// The etcd client.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// This replica's name in the election.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The timings.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    fn leader_key(&self) -> String {
        self.etcd.key("leader")
    }

    /// What this replica knows now.
    pub fn standing(&self) -> Standing {
        self.standing
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn set(&self, f: impl FnOnce(&mut Standing)) {
        let mut standing = self.standing.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut standing);
    }

    fn term(&self) -> Option<i64> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|h| h.term)
    }

    /// Whether this replica leads, by its own last knowledge (writes are
    /// fenced besides).
    pub fn is_leader(&self) -> bool {
        self.standing().role == Role::Leader
    }

    fn step_down(&self, why: &str) {
        let was = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        if was.is_some() {
            tracing::warn!(reason = %why, "stepped down as leader");
            self.set(|s| {
                s.role = Role::Follower;
                s.stepped_down = Some(why.to_owned());
                if s.leader.as_deref() == Some(self.identity.as_str()) {
                    s.leader = None;
                    s.term = None;
                }
            });
        }
    }

    /// One round: a leader renews (stepping down past the renew deadline),
    /// a follower tries to take over.
    pub async fn round(&self) {
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|h| (h.lease, h.term, h.renewed));
        if let Some((lease, term, renewed)) = held {
            if renewed.elapsed() > self.timings.renew_deadline {
                self.step_down("the lease was not renewed within the renew deadline");
                return;
            }
            // The lease runs from when the renewal was sent, not answered.
            let sent = Instant::now();
            match self.etcd.keep_alive(lease).await {
                Ok(true) => match self.fence_check(term).await {
                    Ok(true) => {
                        if let Some(h) =
                            self.held.lock().unwrap_or_else(|e| e.into_inner()).as_mut()
                            && h.term == term
                        {
                            h.renewed = sent;
                        }
                    }
                    Ok(false) => self.step_down("a newer leader holds the election key"),
                    Err(error) => tracing::warn!(%error, "cannot confirm leadership"),
                },
                Ok(false) => self.step_down("the lease expired"),
                Err(error) => tracing::warn!(%error, "cannot renew the lease"),
            }
            return;
        }
        let key = self.leader_key();
        let sent = Instant::now();
        let attempt = async {
            let lease = self.etcd.grant(self.timings.lease).await?;
            match self.etcd.create(&key, &self.identity, lease).await {
                Ok(Some(term)) => Ok::<_, EtcdError>(Some((lease, term))),
                Ok(None) => {
                    let _ = self.etcd.revoke(lease).await;
                    Ok(None)
                }
                Err(error) => {
                    // The create may have landed with its answer lost:
                    // give the lease back, so that the election is not
                    // held by nobody until it expires.
                    let _ = self.etcd.revoke(lease).await;
                    Err(error)
                }
            }
        };
        match attempt.await {
            Ok(Some((lease, term))) => {
                *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(Held {
                    lease,
                    term,
                    renewed: sent,
                });
                tracing::info!(term, identity = %self.identity, "became leader");
                self.set(|s| {
                    s.role = Role::Leader;
                    s.leader = Some(self.identity.clone());
                    s.term = Some(term);
                    s.stepped_down = None;
                });
            }
            Ok(None) => match self.etcd.get(&key).await {
                Ok(found) => self.set(|s| {
                    s.role = Role::Follower;
                    s.leader = found
                        .as_ref()
                        .map(|(v, _)| String::from_utf8_lossy(v).into_owned());
                    s.term = found.map(|(_, rev)| rev);
                }),
                Err(_) => self.set(|s| s.role = Role::Unreachable),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot reach etcd; serving read-only");
                self.set(|s| s.role = Role::Unreachable);
            }
        }
    }

    async fn fence_check(&self, term: i64) -> Result<bool, EtcdError> {
        self.etcd
            .fenced(&self.leader_key(), &self.identity, term, &[])
            .await
    }

    /// The term this replica leads in now, if it does.
    pub fn current_term(&self) -> Option<i64> {
        self.term()
    }

    /// Whether this replica still leads in `term` by its own clock: it
    /// holds that term and renewed its lease within the renew deadline.
    pub fn holds(&self, term: i64) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|h| h.term == term && h.renewed.elapsed() < self.timings.renew_deadline)
    }

    /// Checks that this replica still leads in `term`: by its own clock
    /// (renewed within the renew deadline), then in etcd. Steps down and
    /// refuses when it does not (or etcd cannot say).
    pub async fn fence(&self, term: i64) -> Result<(), String> {
        if !self.holds(term) {
            return Err(format!(
                "leadership of term {term} is not held (lost, or not renewed within the renew deadline); nothing more is written by this replica"
            ));
        }
        match self.fence_check(term).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.step_down("fenced: a newer leader holds the election key");
                Err(format!(
                    "leadership of term {term} is lost (a newer leader holds the election key); nothing more is written by this replica"
                ))
            }
            Err(error) => Err(format!(
                "cannot confirm leadership of term {term} ({error}); nothing is written until etcd answers"
            )),
        }
    }

    /// Writes shared state under `term`; refuses when the term is lost.
    pub async fn put_fenced(&self, term: i64, name: &str, value: Vec<u8>) -> Result<(), String> {
        if !self.holds(term) {
            return Err(format!(
                "leadership of term {term} is not held; {name} was not written"
            ));
        }
        match self
            .etcd
            .fenced(
                &self.leader_key(),
                &self.identity,
                term,
                &[(self.etcd.key(name), value)],
            )
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.step_down("fenced: a newer leader holds the election key");
                Err(format!(
                    "leadership of term {term} is lost; {name} was not written"
                ))
            }
            Err(error) => Err(format!("writing {name} to etcd: {error}")),
        }
    }

    /// Gives up leadership (graceful handover): the lease is revoked, so a
    /// follower takes over at its next round.
    pub async fn resign(&self) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(held) = held {
            let _ = self.etcd.revoke(held.lease).await;
            tracing::info!(term = held.term, "resigned leadership");
            self.set(|s| {
                s.role = Role::Follower;
                s.leader = None;
                s.term = None;
                s.stepped_down = Some("resigned on shutdown".to_owned());
            });
        }
    }

    /// Runs rounds until `stop`.
    pub async fn campaign(self: Arc<Self>, stop: Arc<std::sync::atomic::AtomicBool>) {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            self.round().await;
            tokio::time::sleep(self.timings.retry).await;
        }
    }
}

/// The election as the engine's write fence, for the term a reconcile
/// started in: a replica deposed and elected again in a later term does
/// not carry on the earlier term's work.
pub struct ElectionFence(pub Arc<Election>, pub i64);

#[async_trait::async_trait]
impl crate::providers::Fence for ElectionFence {
    async fn check(&self) -> Result<(), String> {
        self.0.fence(self.1).await
    }

    async fn lost(&self) {
        while self.0.holds(self.1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The rollout ledger kept in etcd under the prefix, written under the
/// term the reconcile started in.
pub struct EtcdLedger(pub Arc<Election>, pub i64);

impl crate::rollout::LedgerBackend for EtcdLedger {
    fn load(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let election = self.0.clone();
        blocking(async move {
            election
                .etcd()
                .get(&election.etcd().key("ledger"))
                .await
                .map(|found| found.map(|(value, _)| value))
                .map_err(|e| anyhow::anyhow!("reading the rollout ledger: {e}"))
        })
    }

    fn save(&self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let (election, term) = (self.0.clone(), self.1);
        blocking(async move {
            election
                .put_fenced(term, "ledger", bytes)
                .await
                .map_err(|e| anyhow::anyhow!(e))
        })
    }

    fn describe(&self) -> String {
        format!("etcd key {}", self.0.etcd().key("ledger"))
    }
}

/// The audit trail in etcd, under `PREFIX/audit/`: every replica's lines
/// in one place, ordered by time. Lines are not fenced: a write that
/// landed is recorded even when its replica has just lost the lead.
pub struct EtcdAudit(pub Arc<Election>);

/// Lines appended by this process, to keep keys of one millisecond apart.
static AUDIT_SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[async_trait::async_trait]
impl crate::audit::AuditSink for EtcdAudit {
    async fn append(&self, lines: &[String]) -> Result<(), String> {
        for line in lines {
            let millis = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let sequence = AUDIT_SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let key = self.0.etcd.key(&format!(
                "audit/{millis:016}-{}-{sequence:08}",
                self.0.identity
            ));
            self.0
                .etcd
                .put(&key, line.as_bytes())
                .await
                .map_err(|e| format!("appending to the audit trail in etcd: {e}"))?;
        }
        Ok(())
    }

    async fn read(&self) -> Result<Vec<String>, String> {
        let values = self
            .0
            .etcd
            .values_under(&self.0.etcd.key("audit/"))
            .await
            .map_err(|e| format!("reading the audit trail from etcd: {e}"))?;
        Ok(values
            .into_iter()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect())
    }

    fn describe(&self) -> String {
        format!("etcd keys {}", self.0.etcd.key("audit/"))
    }
}

/// Runs an etcd call from the synchronous ledger interface, on the
/// multi-threaded runtime the daemon runs on.
fn blocking<T>(future: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_urls_name_endpoints_and_a_prefix() {
        assert_eq!(
            EtcdTarget::parse("etcd://10.0.0.1:2379,10.0.0.2:2379/prod/meridian"),
            Ok(EtcdTarget {
                endpoints: vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()],
                prefix: "prod/meridian".into(),
            })
        );
        assert_eq!(
            EtcdTarget::parse("etcd://localhost:2379").map(|t| t.prefix),
            Ok("meridian".to_owned())
        );
        assert!(EtcdTarget::parse("http://localhost:2379").is_err());
        assert!(EtcdTarget::parse("etcd://localhost").is_err());
    }
}
