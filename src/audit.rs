//! The audit trail: one JSON line for every write call meridian makes to a
//! cloud.
//!
//! A line says when, from which revision (its author and verified signer),
//! who triggered it (the daemon, `apply`, an override, a rollback step, a
//! release), the object, each field before → after, the API call with the
//! cloud's request id, and how it ended. Throttled and failed attempts get
//! their own lines, so the trail matches the cloud's own record call for
//! call. Lines go to `audit.jsonl` in the state directory, or to etcd when
//! several replicas share one (see `daemon::election`). Nothing secret is
//! ever in a line: values are desired-state fields, which hold no secrets,
//! and errors are the clouds' codes and messages.
//!
//! A line is appended after its unit of work returns, before the next wave
//! starts. A crash between a call landing and its line being written loses
//! that line, never the write: the next reconcile observes the world as it
//! is, and its own writes are recorded.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use meridian_provider::journal::WriteCall;
use meridian_provider::{Action, Address, FieldChange};
use serde::{Deserialize, Serialize};

/// The file in a state directory that holds the trail.
pub const FILE: &str = "audit.jsonl";

/// Who made a write happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// `meridian run`, applying a revision or correcting drift.
    #[default]
    Daemon,
    /// `meridian apply`.
    Apply,
    /// A rollback step (of the daemon's or an apply's rollout).
    Rollback,
    /// `meridian override set | clear`.
    Override,
    /// `meridian release`.
    Release,
}

impl Trigger {
    /// The word used in lines and text output.
    pub fn word(self) -> &'static str {
        match self {
            Self::Daemon => "daemon",
            Self::Apply => "apply",
            Self::Rollback => "rollback",
            Self::Override => "override",
            Self::Release => "release",
        }
    }
}

/// What every line of one run shares: the revision and who caused it.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The Git revision applied, when the desired state came from Git.
    pub revision: Option<String>,
    /// The commit's author, `Name <email>`.
    pub author: Option<String>,
    /// The verified signer of the commit (principal and key fingerprint),
    /// when signatures are verified.
    pub signer: Option<String>,
    /// What started the writes.
    pub trigger: Trigger,
    /// Who ran meridian: the replica's identity, or `user@host`.
    pub actor: String,
}

/// One object's changes in a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditChange {
    /// The object (meridian's address).
    pub address: String,
    /// `create`, `update`, `delete` or `adopt`.
    pub action: String,
    /// Each field, before → after.
    pub fields: Vec<FieldChange>,
}

impl AuditChange {
    /// The audit form of a planned change.
    pub fn of(address: &Address, action: Action, fields: &[FieldChange]) -> Self {
        Self {
            address: address.to_string(),
            action: action.word().to_owned(),
            fields: fields.to_vec(),
        }
    }
}

/// One line of the trail: one write call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the line was written (RFC 3339, UTC).
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Git revision.
    pub revision: Option<String>,
    /// Commit author.
    pub author: Option<String>,
    /// Verified signer.
    pub signer: Option<String>,
    /// Who triggered the write.
    pub trigger: Trigger,
    /// Who ran meridian.
    pub actor: String,
    /// The rollout step, when the write was part of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The `Provider` document that wrote.
    pub provider: String,
    /// The cloud API object written.
    pub object: String,
    /// The changes the call carried.
    pub changes: Vec<AuditChange>,
    /// The API operation, e.g. `UpdateEndpointGroup`.
    pub call: String,
    /// The cloud's request id for the call.
    pub request_id: Option<String>,
    /// `ok` or `failed`.
    pub outcome: String,
    /// The error code, when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// Whether this line concerns `address`: the object written, one of the
    /// changes, or an object inside one of them.
    pub fn concerns(&self, address: &str) -> bool {
        let address = address.trim();
        // Addresses nest with dots: `GlobalAccelerator[api]` holds
        // `GlobalAccelerator[api].listener[https]`.
        let inside = |a: &str| {
            a == address
                || a.strip_prefix(address)
                    .is_some_and(|rest| rest.starts_with('.'))
        };
        inside(&self.object) || self.changes.iter().any(|c| inside(&c.address))
    }
}

/// Where lines are kept.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends lines (each a JSON object, no newline) in order.
    async fn append(&self, lines: &[String]) -> Result<(), String>;
    /// Every line, oldest first.
    async fn read(&self) -> Result<Vec<String>, String>;
    /// Where the trail is, for messages.
    fn describe(&self) -> String;
}

/// The trail in a state directory: `audit.jsonl`, appended and synced
/// line by line.
pub struct FileSink {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileSink {
    /// The trail of the state directory `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(FILE),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait::async_trait]
impl AuditSink for FileSink {
    async fn append(&self, lines: &[String]) -> Result<(), String> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let mut text = String::new();
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| format!("opening {}: {e}", self.path.display()))?;
        // One write of whole lines to a file opened for append: concurrent
        // writers (a daemon and an override) never interleave inside a line.
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("appending to {}: {e}", self.path.display()))
    }

    async fn read(&self) -> Result<Vec<String>, String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("reading {}: {e}", self.path.display())),
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// The trail of one run: a sink and the context its lines share.
pub struct AuditLog {
    sink: Arc<dyn AuditSink>,
    context: Mutex<Context>,
    step: Mutex<Option<(usize, bool)>>,
}

impl AuditLog {
    /// A trail writing to `sink` with `context`.
    pub fn new(sink: Arc<dyn AuditSink>, context: Context) -> Self {
        Self {
            sink,
            context: Mutex::new(context),
            step: Mutex::new(None),
        }
    }

    /// The writes that follow belong to rollout step `number` (a rollback
    /// step when `rollback`).
    pub fn step(&self, number: usize, rollback: bool) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = Some((number, rollback));
    }

    /// Where the lines go.
    pub fn describe(&self) -> String {
        self.sink.describe()
    }

    /// Records the write calls of one unit of work: a line per call.
    pub async fn record(
        &self,
        provider: &str,
        object: &Address,
        changes: &[AuditChange],
        calls: &[WriteCall],
    ) -> Result<(), String> {
        if calls.is_empty() {
            return Ok(());
        }
        let context = self
            .context
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let step = *self.step.lock().unwrap_or_else(|e| e.into_inner());
        let now = SystemTime::now();
        let at_unix_ms = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let trigger = match step {
            Some((_, true)) => Trigger::Rollback,
            _ => context.trigger,
        };
        let lines: Vec<String> = calls
            .iter()
            .map(|call| {
                let record = Record {
                    at: crate::clock::rfc3339(now),
                    at_unix_ms,
                    revision: context.revision.clone(),
                    author: context.author.clone(),
                    signer: context.signer.clone(),
                    trigger,
                    actor: context.actor.clone(),
                    step: step.map(|(n, _)| n),
                    provider: provider.to_owned(),
                    object: object.to_string(),
                    changes: changes.to_vec(),
                    call: call.operation.clone(),
                    request_id: call.request_id.clone(),
                    outcome: if call.ok { "ok" } else { "failed" }.to_owned(),
                    error: call.error.clone(),
                };
                serde_json::to_string(&record).unwrap_or_default()
            })
            .collect();
        let appended = self.sink.append(&lines).await;
        if appended.is_err() {
            LOST.fetch_add(
                u64::try_from(lines.len()).unwrap_or(u64::MAX),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        appended
    }
}

/// Lines this process could not append (the disk was full, etcd was
/// down): the writes they describe stand, their record is lost.
static LOST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many audit lines this process could not append.
pub fn lost_lines() -> u64 {
    LOST.load(std::sync::atomic::Ordering::Relaxed)
}

/// The lines of a trail, oldest first; lines that do not parse are
/// reported, not skipped silently.
pub async fn load(sink: &dyn AuditSink) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for (index, line) in sink.read().await?.iter().enumerate() {
        let record: Record = serde_json::from_str(line).map_err(|e| {
            format!(
                "{} line {}: not an audit record: {e}",
                sink.describe(),
                index + 1
            )
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Who runs this process: `user@host`.
pub fn local_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{user}@{host}")
}

/// Renders records as text: a header line per call, a line per field.
pub fn render_text(records: &[Record]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for record in records {
        let revision = record
            .revision
            .as_deref()
            .map(|r| &r[..r.len().min(12)])
            .unwrap_or("-");
        let _ = write!(
            out,
            "{}  {}  {}",
            record.at,
            record.trigger.word(),
            record.actor
        );
        if let Some(step) = record.step {
            let _ = write!(out, "  step {step}");
        }
        let _ = writeln!(out, "  revision {revision}");
        if record.author.is_some() || record.signer.is_some() {
            let _ = writeln!(
                out,
                "    author {}  signed by {}",
                record.author.as_deref().unwrap_or("-"),
                record.signer.as_deref().unwrap_or("(not verified)")
            );
        }
        let _ = write!(
            out,
            "    {} {}  request {}  {}",
            record.provider,
            record.call,
            record.request_id.as_deref().unwrap_or("-"),
            record.outcome
        );
        if let Some(error) = &record.error {
            let _ = write!(out, " ({error})");
        }
        out.push('\n');
        for change in &record.changes {
            let _ = writeln!(out, "    {} {}", change.action, change.address);
            for field in &change.fields {
                let _ = writeln!(
                    out,
                    "      {}: {} → {}",
                    field.path,
                    show(field.before.as_ref()),
                    show(field.after.as_ref())
                );
            }
        }
    }
    out
}

fn show(value: Option<&serde_json::Value>) -> String {
    match value {
        None => "(none)".to_owned(),
        Some(serde_json::Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(operation: &str, request: &str, ok: bool) -> WriteCall {
        WriteCall {
            operation: operation.to_owned(),
            request_id: Some(request.to_owned()),
            ok,
            error: (!ok).then(|| "ThrottlingException".to_owned()),
        }
    }

    #[tokio::test]
    async fn a_line_per_call_with_its_context_read_back_and_selected_by_object() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sink: Arc<dyn AuditSink> = Arc::new(FileSink::new(dir.path()));
        let log = AuditLog::new(
            sink.clone(),
            Context {
                revision: Some("0123456789abcdef".to_owned()),
                author: Some("Ann <ann@example.com>".to_owned()),
                signer: Some("ann@example.com (SHA256:x)".to_owned()),
                trigger: Trigger::Daemon,
                actor: "replica-a".to_owned(),
            },
        );
        let group = Address::EndpointGroup {
            accelerator: "api".to_owned(),
            listener: "https".to_owned(),
            region: "eu-west-1".to_owned(),
        };
        let change = AuditChange::of(
            &group,
            Action::Update,
            &[FieldChange {
                path: "trafficDial".to_owned(),
                before: Some(40.into()),
                after: Some(65.into()),
            }],
        );
        log.step(2, false);
        log.record(
            "aws-global",
            &group,
            std::slice::from_ref(&change),
            &[
                call("UpdateEndpointGroup", "r-1", false),
                call("UpdateEndpointGroup", "r-2", true),
            ],
        )
        .await
        .expect("recorded");
        log.step(3, true);
        log.record(
            "aws-global",
            &group,
            &[change],
            &[call("UpdateEndpointGroup", "r-3", true)],
        )
        .await
        .expect("recorded");
        let records = load(sink.as_ref()).await.expect("loaded");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].outcome, "failed");
        assert_eq!(records[0].error.as_deref(), Some("ThrottlingException"));
        assert_eq!(records[1].request_id.as_deref(), Some("r-2"));
        assert_eq!(records[1].trigger, Trigger::Daemon);
        assert_eq!(records[1].step, Some(2));
        assert_eq!(records[2].trigger, Trigger::Rollback);
        assert!(records.iter().all(|r| {
            r.concerns("GlobalAccelerator[api].listener[https].endpointGroup[eu-west-1]")
                && r.concerns("GlobalAccelerator[api]")
        }));
        assert!(!records[0].concerns("GlobalAccelerator[ap]"));
        assert!(!records[0].concerns("GlobalAccelerator[api].listener[http]"));
        let text = render_text(&records[1..2]);
        assert!(text.contains("trafficDial: 40 → 65"), "{text}");
        assert!(text.contains("signed by ann@example.com"), "{text}");
        assert!(text.contains("request r-2  ok"), "{text}");
    }

    #[tokio::test]
    async fn a_damaged_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), "{}\n").expect("write");
        let error = load(&FileSink::new(dir.path())).await.expect_err("damaged");
        assert!(error.contains("line 1"), "{error}");
    }
}
