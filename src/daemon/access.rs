//! Who may read `/status` and `/metrics`.
//!
//! The webhook receiver must be reachable from the Git host, so whatever
//! shares its listener is as exposed as it is. `/status` names revisions,
//! objects and error details; `/metrics` names providers and operations. With
//! a [`BearerToken`] (`--status-token-env` / `--status-token-file`), both
//! require `Authorization: Bearer <token>`, as Prometheus sends it from
//! `authorization.credentials_file`; the probes `/healthz` and `/readyz`
//! stay open for the kubelet. The token is never logged or echoed, and its
//! `Debug` form is redacted.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key both sides of a comparison are hashed with: comparing two
/// fixed-length tags in constant time hides the token's content and length.
const COMPARISON_KEY: &[u8] = b"meridian read access";

/// Why a bearer token cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nothing but whitespace.
    #[error("is empty")]
    Empty,
    /// Characters an `Authorization` header cannot carry as a bearer token.
    #[error("holds spaces, control characters or non-ASCII; a bearer token is printable ASCII")]
    NotPrintable,
}

/// The bearer token `/status` and `/metrics` require.
#[derive(Clone)]
pub struct BearerToken {
    /// The token's HMAC under [`COMPARISON_KEY`]; the token itself is not kept.
    tag: Vec<u8>,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

fn tag(token: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(COMPARISON_KEY)
        .expect("HMAC takes keys of any length");
    mac.update(token);
    mac
}

/// Whether a request's `Authorization` header carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The right token.
    Admitted,
    /// No bearer token at all.
    Missing,
    /// A bearer token, but not the right one.
    Invalid,
}

impl BearerToken {
    /// A token from its bytes (surrounding whitespace trimmed, as files end
    /// with a newline).
    pub fn new(bytes: &[u8]) -> Result<Self, TokenError> {
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Err(TokenError::Empty);
        }
        if !trimmed.iter().all(u8::is_ascii_graphic) {
            return Err(TokenError::NotPrintable);
        }
        Ok(Self {
            tag: tag(trimmed).finalize().into_bytes().to_vec(),
        })
    }

    /// Checks an `Authorization` header value (`Bearer <token>`, the
    /// scheme in any case), in constant time.
    pub fn check(&self, authorization: Option<&str>) -> Verdict {
        let Some((scheme, presented)) = authorization.and_then(|h| h.trim().split_once(' ')) else {
            return Verdict::Missing;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Verdict::Missing;
        }
        if tag(presented.trim().as_bytes())
            .verify_slice(&self.tag)
            .is_ok()
        {
            Verdict::Admitted
        } else {
            Verdict::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_is_admitted() {
        let token = BearerToken::new(b"s3cret-token\n").expect("token");
        assert_eq!(token.check(Some("Bearer s3cret-token")), Verdict::Admitted);
        assert_eq!(token.check(Some("bearer s3cret-token")), Verdict::Admitted);
        assert_eq!(token.check(Some("Bearer s3cret-tokenx")), Verdict::Invalid);
        assert_eq!(token.check(Some("Bearer s3cret")), Verdict::Invalid);
        assert_eq!(token.check(Some("Bearer ")), Verdict::Missing);
        assert_eq!(token.check(Some("Basic s3cret-token")), Verdict::Missing);
        assert_eq!(token.check(Some("s3cret-token")), Verdict::Missing);
        assert_eq!(token.check(None), Verdict::Missing);
    }

    #[test]
    fn unusable_tokens_are_refused_and_debug_is_redacted() {
        assert_eq!(BearerToken::new(b" \n").err(), Some(TokenError::Empty));
        assert_eq!(
            BearerToken::new(b"two words").err(),
            Some(TokenError::NotPrintable)
        );
        let token = BearerToken::new(b"s3cret-token").expect("token");
        assert_eq!(format!("{token:?}"), "BearerToken(***)");
    }
}
