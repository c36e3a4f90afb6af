//! `meridian audit`: who moved this dial, when, from which commit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;
use clap::Args;
use meridian::audit::{self, AuditSink};
use meridian::exit;

use super::*;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only writes at or after this time: an RFC 3339 time
    /// (2026-12-05T10:00:00Z) or a duration back from now (30m, 2h, 7d).
    #[arg(long, value_name = "TIME|DURATION")]
    pub since: Option<String>,
    /// Only writes to this object or to objects inside it: an address as
    /// plans print it (`GlobalAccelerator[api]`,
    /// `GlobalAccelerator[api].listener[https].endpointGroup[eu-west-1]`).
    #[arg(long, value_name = "ADDR")]
    pub object: Option<String>,
    /// Output format: text, or JSON lines (one record per line, as kept).
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
    /// The state directory whose trail to read.
    #[arg(long, default_value = ".meridian-state")]
    pub state_dir: PathBuf,
    /// Read the trail the `meridian run --election` replicas keep in this
    /// etcd (`etcd://HOST:PORT[/PREFIX]`) instead.
    #[arg(long, value_name = "URL", value_parser = meridian::daemon::election::EtcdTarget::parse)]
    pub election: Option<meridian::daemon::election::EtcdTarget>,
}

/// The time `--since` names, in milliseconds since the Unix epoch.
fn since_ms(text: &str, now: SystemTime) -> Result<u64, String> {
    let at = match meridian::clock::parse_rfc3339(text) {
        Some(at) => at,
        None => {
            let back = meridian::clock::parse_duration(text).map_err(|_| {
                format!("`{text}` is neither an RFC 3339 time (2026-12-05T10:00:00Z) nor a duration (30m, 2h, 7d)")
            })?;
            now.checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH)
        }
    };
    Ok(at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0))
}

pub async fn audit(args: &AuditArgs) -> Result<u8> {
    let since = match args
        .since
        .as_deref()
        .map(|t| since_ms(t, SystemTime::now()))
    {
        None => None,
        Some(Ok(ms)) => Some(ms),
        Some(Err(why)) => {
            eprintln!("error: --since: {why}");
            return Ok(exit::ERROR);
        }
    };
    let sink: Arc<dyn AuditSink> = audit_sink(&args.state_dir, args.election.as_ref());
    let records = match audit::load(sink.as_ref()).await {
        Ok(records) => records,
        Err(why) => {
            eprintln!("error: {why}");
            return Ok(exit::ERROR);
        }
    };
    let selected: Vec<audit::Record> = records
        .into_iter()
        .filter(|r| since.is_none_or(|ms| r.at_unix_ms >= ms))
        .filter(|r| args.object.as_deref().is_none_or(|o| r.concerns(o)))
        .collect();
    match args.format {
        ShowFormat::Json => {
            for record in &selected {
                println!("{}", serde_json::to_string(record)?);
            }
        }
        ShowFormat::Text => {
            if selected.is_empty() {
                println!("No writes recorded in {} match.", sink.describe());
            } else {
                print!("{}", audit::render_text(&selected));
            }
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_back_from_now() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10_000);
        assert_eq!(since_ms("1h", now), Ok(6_400_000));
        assert_eq!(since_ms("1970-01-01T00:00:05Z", now), Ok(5_000));
        assert!(
            since_ms("yesterday", now)
                .expect_err("not a time")
                .contains("RFC 3339")
        );
    }
}
