//! Webhook signature verification.
//!
//! GitHub signs the raw request body with HMAC-SHA256 and sends
//! `X-Hub-Signature-256: sha256=<hex>`; meridian's generic webhook uses the
//! same scheme in `X-Meridian-Signature-256`. Comparison is constant-time
//! (`hmac`'s `verify_slice`). The secret is never logged or echoed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

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
}
