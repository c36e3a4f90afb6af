//! The replacement guard: a plan that deletes an accelerator while it
//! creates another in the same provider (a renamed document, a changed
//! identity: a replacement), or deletes an object meridian adopted, is
//! blocked until a document acknowledges what is lost.
//!
//! A Global Accelerator's two static anycast addresses are the ones in
//! customers' DNS and allow-lists; a deleted accelerator's addresses are
//! gone for good (BYOIP addresses cannot move to a new accelerator at all).
//! So the acknowledgement is the addresses themselves, written in
//! `meridian.dev/allow-replace`: on the `GlobalAccelerator` that replaces
//! it, or on the `Provider` of an accelerator being deleted. An adopted
//! object of another kind (it has no addresses) is acknowledged by its
//! cloud id.

use std::collections::{BTreeMap, BTreeSet};

use meridian_provider::{Action, Address, Change, Observed};

use crate::model::{ALLOW_REPLACE_KEY, DesiredState, acknowledged_addresses};
use crate::policy::Violation;

/// The name of the guard in violations.
pub const GUARD: &str = "replacement-guard";

/// Every delete the guard stops, as a violation naming what would be lost.
pub fn check(
    state: &DesiredState,
    changes: &[Change],
    observed: &[(String, Observed)],
) -> Vec<Violation> {
    let live: BTreeMap<(&str, &Address), &Observed> = observed
        .iter()
        .map(|(p, o)| ((p.as_str(), &o.address), o))
        .collect();
    let mut out = Vec::new();
    for change in changes.iter().filter(|c| c.action == Action::Delete) {
        let Some(have) = live.get(&(change.provider.as_str(), &change.address)) else {
            continue;
        };
        let accelerator = matches!(change.address, Address::Accelerator { .. });
        // Accelerators this plan creates, in any provider (two Provider
        // documents may name one account): the delete may be half of a
        // replacement.
        let replacements: Vec<&Change> = changes
            .iter()
            .filter(|c| {
                accelerator
                    && c.action == Action::Create
                    && matches!(c.address, Address::Accelerator { .. })
            })
            .collect();
        if !have.adopted && replacements.is_empty() {
            continue;
        }
        let lost: Vec<String> = if accelerator {
            have.ip_addresses
                .iter()
                .map(|ip| {
                    ip.parse::<std::net::IpAddr>()
                        .map_or_else(|_| ip.clone(), |ip| ip.to_string())
                })
                .collect()
        } else {
            have.cloud_id.clone().into_iter().collect()
        };
        // Addresses the cloud did not report cannot be acknowledged: the
        // plan stays blocked until they are observed.
        let lost = if lost.is_empty() {
            vec!["(addresses not reported by the cloud; re-run plan)".to_owned()]
        } else {
            lost
        };
        // Acknowledgements: on the replacing accelerators' documents and on
        // the provider's.
        let mut acknowledged: BTreeSet<String> = BTreeSet::new();
        let mut read = |annotations: &BTreeMap<String, String>| {
            if let Some(Ok(items)) = annotations
                .get(ALLOW_REPLACE_KEY)
                .map(|v| acknowledged_addresses(v))
            {
                acknowledged.extend(items);
            }
        };
        for replacement in &replacements {
            if let Address::Accelerator { accelerator } = &replacement.address
                && let Some(doc) = state.accelerator(accelerator)
            {
                read(&doc.doc.metadata.annotations);
            }
        }
        let provider_doc = state.provider(&change.provider);
        if let Some(doc) = provider_doc {
            read(&doc.doc.metadata.annotations);
        }
        let missing: Vec<&String> = lost
            .iter()
            .filter(|ip| !acknowledged.contains(*ip))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let (what, location, resource) = match replacements.first() {
            Some(replacement) => {
                let name = match &replacement.address {
                    Address::Accelerator { accelerator } => accelerator.clone(),
                    other => other.to_string(),
                };
                let location = state
                    .accelerator(&name)
                    .map(|d| format!("{}:{}", d.file, d.at("metadata")))
                    .unwrap_or_default();
                (
                    format!("replaces {} with GlobalAccelerator/{name}", change.address),
                    location,
                    format!("GlobalAccelerator/{name}"),
                )
            }
            None => (
                format!("deletes {}, which meridian adopted", change.address),
                provider_doc
                    .map(|d| format!("{}:{}", d.file, d.at("metadata")))
                    .unwrap_or_default(),
                format!("Provider/{}", change.provider),
            ),
        };
        let list = lost.join(", ");
        let message = if accelerator {
            format!(
                "the plan {what}: its static IP addresses {list} would be lost for good (clients' DNS and allow-lists name them; BYOIP addresses cannot move to a new accelerator). Keep the old document's name (or pin the accelerator with `meridian.dev/external-id`), or acknowledge the loss with `{ALLOW_REPLACE_KEY}: \"{list}\"` on {resource}"
            )
        } else {
            format!(
                "the plan {what} ({list}); acknowledge with `{ALLOW_REPLACE_KEY}: \"{list}\"` on {resource}, or `meridian release` it first to leave it running"
            )
        };
        out.push(Violation {
            policy: GUARD.to_owned(),
            resource,
            path: format!("metadata.annotations.{ALLOW_REPLACE_KEY}"),
            region: String::new(),
            location,
            message,
            transient: false,
        });
    }
    out
}
