//! Changes: what a plan asks a provider to do to one object.
//!
//! A change carries the full before and after values so a provider can act on
//! it without looking anything up in desired state, and the field-level diff
//! so renderers never recompute it. The `reason` is for humans only: no code
//! may branch on it.

use serde::{Deserialize, Serialize};

use crate::{Address, Resource};

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create an object that does not exist.
    Create,
    /// Modify fields of an existing object.
    Update,
    /// Delete an object meridian owns.
    Delete,
    /// Take over a live object meridian does not own yet (named by a
    /// document's `meridian.dev/external-id`): write only its ownership
    /// marker, then whatever fields differ, as an update would. Never a
    /// create, a delete or a replacement: its cloud id and, for an
    /// accelerator, its IP addresses stay.
    Adopt,
}

impl Action {
    /// The symbol used in text plans.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Adopt => "@",
        }
    }

    /// The word used in text plans and messages.
    pub fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Adopt => "adopt",
        }
    }
}

/// One field's old and new value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Dotted field path inside the resource value, e.g. `healthCheck.port`.
    pub path: String,
    /// Live value (absent for creates).
    pub before: Option<serde_json::Value>,
    /// Desired value (absent for deletes).
    pub after: Option<serde_json::Value>,
}

/// One planned operation on one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Name of the `Provider` document that performs the change.
    pub provider: String,
    /// What is changed.
    pub address: Address,
    /// What happens to it.
    pub action: Action,
    /// Execution wave: every change of wave N lands before any of wave N+1
    /// starts; changes within a wave are independent of each other.
    pub wave: u32,
    /// The live value, for updates and deletes.
    pub before: Option<Resource>,
    /// The desired value, for creates and updates.
    pub after: Option<Resource>,
    /// Cloud identifier of the live object (ARN, id, selfLink), when it exists.
    pub cloud_id: Option<String>,
    /// Optimistic-concurrency token of the live object (GCP fingerprint).
    pub etag: Option<String>,
    /// Field-level differences, in field order.
    pub fields: Vec<FieldChange>,
    /// Why this change is proposed. For humans only.
    pub reason: String,
}
