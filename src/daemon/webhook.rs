//! Webhook signature verification, body limit and replay cache.
//!
//! GitHub signs the raw request body with HMAC-SHA256 and sends
//! `X-Hub-Signature-256: sha256=<hex>`; meridian's generic webhook uses the
//! same scheme in `X-Meridian-Signature-256`. Comparison is constant-time
//! (`hmac`'s `verify_slice`). The secret is never logged or echoed.
//! Delivery ids already acted on are kept in the state directory
//! ([`Deliveries`]), so a replay is recognised across restarts.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Largest webhook body read, in bytes (1 MiB). meridian needs only the
/// pushed ref; GitHub caps push payloads at 25 MB, but only pushes of very
/// many commits or files come near 1 MiB, and a refused delivery costs
/// nothing but its early wake-up: the next poll still sees the commit.
/// Bodies are refused before their signature is checked, so the limit is
/// what an unauthenticated sender can make the daemon buffer.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How many delivery ids the replay cache remembers.
pub const REMEMBERED_DELIVERIES: usize = 1_000;

/// Version of the replay cache file.
const DELIVERIES_FORMAT_VERSION: u32 = 1;

/// The delivery ids of the last [`REMEMBERED_DELIVERIES`] accepted
/// webhooks, oldest first. Persisted in the state directory (written
/// atomically) and loaded at start: a delivery replayed after a restart is
/// still answered as a duplicate and triggers nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deliveries {
    ids: VecDeque<String>,
}

#[derive(Serialize, Deserialize)]
struct DeliveriesFile {
    format_version: u32,
    deliveries: Vec<String>,
}

impl Deliveries {
    /// The replay cache's file in a state directory.
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join("webhook-deliveries.json")
    }

    /// Reads the persisted replay cache; empty when there is none yet.
    pub fn load(state_dir: &Path) -> std::io::Result<Self> {
        let bytes = match std::fs::read(Self::file(state_dir)) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(error) => return Err(error),
        };
        let file: DeliveriesFile = serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let mut deliveries = Self::default();
        for id in file.deliveries {
            deliveries.record(id);
        }
        Ok(deliveries)
    }

    /// Writes the replay cache atomically (a temporary file, then a rename).
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let tmp = state_dir.join("webhook-deliveries.json.tmp");
        let file = DeliveriesFile {
            format_version: DELIVERIES_FORMAT_VERSION,
            deliveries: self.ids.iter().cloned().collect(),
        };
        std::fs::write(
            &tmp,
            serde_json::to_vec(&file).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(tmp, Self::file(state_dir))
    }

    /// Whether `id` was recorded.
    pub fn seen(&self, id: &str) -> bool {
        self.ids.iter().any(|d| d == id)
    }

    /// Records `id`, forgetting the oldest beyond [`REMEMBERED_DELIVERIES`].
    pub fn record(&mut self, id: impl Into<String>) {
        self.ids.push_back(id.into());
        let excess = self.ids.len().saturating_sub(REMEMBERED_DELIVERIES);
        self.ids.drain(..excess);
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A webhook secret. Its `Debug` form is redacted.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// A secret from its bytes (surrounding whitespace trimmed, as files end with a newline).
    pub fn new(bytes: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(bytes);
        let trimmed = text.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.as_bytes().to_vec()))
    }

    /// The signature header value for `body`, for tests and clients.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!(
            "sha256={}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    /// Whether `header` (`sha256=<hex>`) is a valid signature of `body`.
    pub fn verify(&self, body: &[u8], header: Option<&str>) -> bool {
        let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
            return false;
        };
        let Some(signature) = decode_hex(hex) else {
            return false;
        };
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_reference_signature() {
        // The example from GitHub's documentation on validating webhook deliveries.
        let secret = Secret::new(b"It's a Secret to Everybody").expect("secret");
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(secret.sign(b"Hello, World!"), header);
        assert!(secret.verify(b"Hello, World!", Some(header)));
    }

    #[test]
    fn forged_unsigned_and_malformed_signatures_fail() {
        let secret = Secret::new(b"right").expect("secret");
        let wrong = Secret::new(b"wrong").expect("secret");
        let body = br#"{"ref":"refs/heads/main"}"#;
        assert!(!secret.verify(body, Some(&wrong.sign(body))));
        assert!(!secret.verify(body, None));
        assert!(!secret.verify(body, Some("sha256=zz")));
        assert!(!secret.verify(body, Some("sha1=abcd")));
        assert!(!secret.verify(b"tampered", Some(&secret.sign(body))));
        assert_eq!(format!("{secret:?}"), "Secret(***)");
    }

    #[test]
    fn the_replay_cache_survives_a_restart_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut deliveries = Deliveries::default();
        for i in 0..REMEMBERED_DELIVERIES + 5 {
            deliveries.record(format!("d-{i}"));
        }
        assert_eq!(deliveries.len(), REMEMBERED_DELIVERIES);
        assert!(!deliveries.seen("d-4"), "the oldest are forgotten");
        deliveries.save(dir.path()).expect("save");
        assert!(!dir.path().join("webhook-deliveries.json.tmp").exists());
        let loaded = Deliveries::load(dir.path()).expect("load");
        assert_eq!(loaded, deliveries);
        assert!(loaded.seen("d-5") && loaded.seen(&format!("d-{}", REMEMBERED_DELIVERIES + 4)));
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(Deliveries::load(empty.path()).expect("none yet").is_empty());
        std::fs::write(Deliveries::file(empty.path()), "not json").expect("write");
        assert!(Deliveries::load(empty.path()).is_err());
    }
}
