//! Traffic rules: which `TrafficPolicy` governs an object, and what it asks
//! for (step size, bake, gates, serving regions, windows, anti-flap).
//!
//! The one place where a policy is selected for an object; plan, rollout
//! and whatif all ask here.

use std::collections::BTreeMap;
use std::time::Duration;

use meridian_provider::Address;

use crate::model::DesiredState;
use crate::model::raw::{DenyWindow, GateFailure, HealthGate, TrafficKind};

/// The traffic rules of one resource: its `TrafficPolicy`, or the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `TrafficPolicy/<name>`, or `None` for the defaults.
    pub policy: Option<String>,
    /// Largest lever move per step, percent.
    pub max_step: u32,
    /// Wait after each step before its gates are checked.
    pub bake: Duration,
    /// Regions that must keep serving at every step.
    pub min_serving_regions: u32,
    /// Gates checked after each step's bake.
    pub gate: Option<HealthGate>,
    /// What a failed gate does.
    pub on_gate_failure: GateFailure,
    /// Windows in which traffic changes are refused.
    pub deny_windows: Vec<DenyWindow>,
    /// Anti-flap hold.
    pub flap_hold: Duration,
}

impl Rules {
    /// The rules when no `TrafficPolicy` selects a resource: one step, no
    /// bake, no gate, at least one serving region, no windows, no flap hold.
    pub fn defaults() -> Self {
        Self {
            policy: None,
            max_step: 100,
            bake: Duration::ZERO,
            min_serving_regions: 1,
            gate: None,
            on_gate_failure: GateFailure::Rollback,
            deny_windows: Vec::new(),
            flap_hold: Duration::ZERO,
        }
    }

    /// The policy's name for messages.
    pub fn source(&self) -> String {
        self.policy
            .clone()
            .unwrap_or_else(|| "the default traffic rules".to_owned())
    }
}

/// The document (kind and name) whose traffic an address moves.
pub fn document_of(address: &Address) -> Option<(TrafficKind, &str)> {
    match address {
        Address::Accelerator { accelerator }
        | Address::Listener { accelerator, .. }
        | Address::EndpointGroup { accelerator, .. }
        | Address::Endpoint { accelerator, .. } => {
            Some((TrafficKind::GlobalAccelerator, accelerator))
        }
        Address::BackendService { name } => Some((TrafficKind::BackendService, name)),
        Address::Backend { service, .. } => Some((TrafficKind::BackendService, service)),
        _ => None,
    }
}

/// The listener or backend service whose traffic an address moves, without
/// allocating: `(accelerator, Some(listener))` or `(service, None)`.
pub fn subject_key(address: &Address) -> Option<(&str, Option<&str>)> {
    match address {
        Address::Listener {
            accelerator,
            listener,
        }
        | Address::EndpointGroup {
            accelerator,
            listener,
            ..
        }
        | Address::Endpoint {
            accelerator,
            listener,
            ..
        } => Some((accelerator, Some(listener))),
        Address::BackendService { name } => Some((name, None)),
        Address::Backend { service, .. } => Some((service, None)),
        _ => None,
    }
}

/// A subject key as text: `GlobalAccelerator[a].listener[l]` or
/// `BackendService[s]`.
pub fn subject_text((document, listener): (&str, Option<&str>)) -> String {
    match listener {
        Some(listener) => format!("GlobalAccelerator[{document}].listener[{listener}]"),
        None => format!("BackendService[{document}]"),
    }
}

/// The listener or backend service whose traffic an address moves, as text.
pub fn subject_of(address: &Address) -> Option<String> {
    subject_key(address).map(subject_text)
}

/// The rules of the document `kind`/`name`: the first `TrafficPolicy` (by
/// name) that selects it, or the defaults.
pub fn rules_for_document(state: &DesiredState, kind: TrafficKind, name: &str) -> Rules {
    let labels = match kind {
        TrafficKind::GlobalAccelerator => state.accelerator(name).map(|d| &d.doc.metadata.labels),
        TrafficKind::BackendService => state.backend_service(name).map(|d| &d.doc.metadata.labels),
    };
    let none = BTreeMap::new();
    let labels = labels.unwrap_or(&none);
    // The first selecting policy by name (of equal names, the first read).
    let chosen = state
        .traffic_policies
        .iter()
        .filter(|p| p.doc.spec.selector.selects(kind, name, labels))
        .min_by(|a, b| a.name().cmp(b.name()));
    let Some(policy) = chosen else {
        return Rules::defaults();
    };
    let spec = &policy.doc.spec;
    Rules {
        policy: Some(format!("TrafficPolicy/{}", policy.name())),
        max_step: spec.max_step_percent.clamp(1, 100),
        bake: Duration::from_secs(u64::from(spec.bake_seconds)),
        min_serving_regions: spec.min_serving_regions.max(1),
        gate: spec.health_gate.clone(),
        on_gate_failure: spec.on_gate_failure,
        deny_windows: spec.deny_windows.clone(),
        flap_hold: Duration::from_secs(u64::from(spec.flap_hold_seconds)),
    }
}

/// The rules of the document an address belongs to.
pub fn rules_for(state: &DesiredState, address: &Address) -> Rules {
    match document_of(address) {
        Some((kind, name)) => rules_for_document(state, kind, name),
        None => Rules::defaults(),
    }
}
