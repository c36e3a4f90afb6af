//! Break-glass override markers in GCP descriptions.
//!
//! GCP backend services carry no labels, so an override lives in the
//! description as `[meridian.dev/override-until=<time>]`, beside meridian's
//! ownership marker. These helpers read and rewrite that marker and leave
//! the rest of the description alone. They never interpret the time: an
//! unparseable value is reported by the engine, not hidden here.

use crate::OVERRIDE_KEY;

fn opening() -> String {
    format!("[{OVERRIDE_KEY}=")
}

/// The description marker of an override until `until`.
pub fn gcp_override_marker(until: &str) -> String {
    format!("{}{until}]", opening())
}

/// The raw `until` text of the first override marker in `description`.
pub fn gcp_override_until(description: &str) -> Option<String> {
    let open = opening();
    let start = description.find(&open)? + open.len();
    let end = description[start..].find(']')? + start;
    Some(description[start..end].trim().to_owned())
}

/// `description` without any override marker and, with `until`, ending in
/// one marker for it.
pub fn gcp_with_override(description: &str, until: Option<&str>) -> String {
    let open = opening();
    let mut kept = String::new();
    let mut rest = description;
    let mut removed = false;
    while let Some(start) = rest.find(&open) {
        let Some(end) = rest[start..].find(']') else {
            break;
        };
        kept.push_str(rest[..start].trim_end_matches(' '));
        rest = &rest[start + end + 1..];
        removed = true;
    }
    kept.push_str(rest);
    let mut out = if removed {
        kept.trim().to_owned()
    } else {
        kept
    };
    if let Some(until) = until {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(&gcp_override_marker(until));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNED: &str =
        "Managed by meridian. [meridian.dev/managed-by=meridian meridian.dev/owner=gcp-prod]";

    #[test]
    fn set_replace_and_clear_keep_the_ownership_marker() {
        let set = gcp_with_override(OWNED, Some("2030-01-01T00:00:00Z"));
        assert_eq!(
            set,
            format!("{OWNED} [meridian.dev/override-until=2030-01-01T00:00:00Z]")
        );
        assert_eq!(
            gcp_override_until(&set).as_deref(),
            Some("2030-01-01T00:00:00Z")
        );
        let replaced = gcp_with_override(&set, Some("2031-01-01T00:00:00Z"));
        assert_eq!(
            replaced,
            format!("{OWNED} [meridian.dev/override-until=2031-01-01T00:00:00Z]")
        );
        assert_eq!(gcp_with_override(&replaced, None), OWNED);
        assert_eq!(gcp_override_until(OWNED), None);
    }

    #[test]
    fn a_marker_in_the_middle_is_cut_out_cleanly() {
        let text = "before [meridian.dev/override-until=soon] after";
        assert_eq!(gcp_override_until(text).as_deref(), Some("soon"));
        assert_eq!(gcp_with_override(text, None), "before after");
        assert_eq!(
            gcp_with_override("", Some("t")),
            "[meridian.dev/override-until=t]"
        );
    }
}
