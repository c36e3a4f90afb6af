//! Where a listener's or backend service's clients are.
//!
//! A population is a share of the clients placed at a location, named by an
//! AWS or Google Cloud region (the clients near that region's city). Shares
//! come from the desired state's `clients` fields, or, when nothing is
//! declared, from the documented default: equal shares at each region the
//! listener or service uses (rule A-1).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One client population.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Population {
    /// Location: an AWS or Google Cloud region name.
    pub location: String,
    /// Share of the subject's clients, 0.0-1.0; the populations sum to 1.
    pub share: f64,
}

/// The clients of one listener or backend service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clients {
    /// Populations, by location.
    pub populations: Vec<Population>,
    /// Where they were declared (`GlobalAccelerator/api spec.clients`), or
    /// `None` for the default.
    pub declared_at: Option<String>,
}

impl Clients {
    /// Declared shares, normalised to sum to 1. Shares that are not above 0
    /// are dropped (validation refuses them).
    pub fn declared(shares: &BTreeMap<String, f64>, at: String) -> Clients {
        let total: f64 = shares.values().filter(|s| **s > 0.0).sum();
        Clients {
            populations: shares
                .iter()
                .filter(|(_, s)| **s > 0.0 && total > 0.0)
                .map(|(location, s)| Population {
                    location: location.clone(),
                    share: s / total,
                })
                .collect(),
            declared_at: Some(at),
        }
    }

    /// The default: equal shares at each of `regions`.
    pub fn equal_at<'a>(regions: impl IntoIterator<Item = &'a String>) -> Clients {
        let regions: BTreeSet<&String> = regions.into_iter().collect();
        let n = regions.len().max(1) as f64;
        Clients {
            populations: regions
                .into_iter()
                .map(|r| Population {
                    location: r.clone(),
                    share: 1.0 / n,
                })
                .collect(),
            declared_at: None,
        }
    }

    /// Whether the shares come from the default rather than a declaration.
    pub fn is_default(&self) -> bool {
        self.declared_at.is_none()
    }

    /// For humans: `declared at GlobalAccelerator/api spec.clients:
    /// us-east-1 40.0%, …` or `not declared; assumed equal at each region in
    /// use: …`.
    pub fn describe(&self) -> String {
        let list = self
            .populations
            .iter()
            .map(|p| format!("{} {:.1}%", p.location, p.share * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        match &self.declared_at {
            Some(at) => format!("clients declared at {at}: {list}"),
            None => format!(
                "clients not declared; assumed equal at each region in use (rule A-1): {list}"
            ),
        }
    }
}
