//! The rules the traffic model follows, each with the documentation it
//! comes from. `docs/traffic-model.md` quotes the sentence behind each one;
//! every prediction names the rules it used, so a reviewer can check it.

use serde::{Serialize, Serializer};

/// One documented routing rule, or one of meridian's stated assumptions
/// where the clouds' documentation is silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// GA-1: each client goes to its closest endpoint group.
    GaProximity,
    /// GA-2: a group keeps its traffic dial's share of the clients directed
    /// to it; the rest goes to the next closest group.
    GaDial,
    /// GA-3: a group with no healthy endpoint of weight above 0 fails over to
    /// the closest serving group among the client's three closest, its dial
    /// ignored.
    GaFailover,
    /// GA-4: none of the three closest groups serves: fail open to the
    /// closest group.
    GaFailOpen,
    /// GA-5: endpoint weights split a group's share between its endpoints.
    GaWeights,
    /// GCP-1: `WATERFALL_BY_REGION` (and the region-level behaviour of
    /// `SPRAY_TO_REGION` and `WATERFALL_BY_ZONE`): the closest region with
    /// capacity fills up to its target capacity × capacity scaler, then
    /// traffic overflows to the next closest.
    GcpWaterfall,
    /// GCP-2: the classic (`EXTERNAL`) scheme sends each request to the
    /// closest region with capacity, overflowing to the next closest.
    GcpClassic,
    /// GCP-3: `SPRAY_TO_WORLD` spreads traffic over every backend in
    /// proportion to capacity.
    GcpSpray,
    /// no `clients` declared: equal shares at each region in use.
    AssumeClients,
    /// traffic every dial turns away stays with the closest serving group.
    AssumeResidual,
    /// a backend whose capacity is not known in requests per second never fills.
    AssumeUnknownCapacity,
    /// no `expectedRps`: every region is assumed under capacity.
    AssumeUnderCapacity,
    /// load above every region's capacity spreads in proportion to capacity.
    AssumeExcess,
    /// spraying over backends some of whose capacity is unknown: every
    /// backend weighs its capacity scaler alone.
    AssumeEqualCapacity,
}

impl Rule {
    /// Short identifier, as `docs/traffic-model.md` numbers the rules.
    pub fn id(self) -> &'static str {
        match self {
            Rule::GaProximity => "GA-1",
            Rule::GaDial => "GA-2",
            Rule::GaFailover => "GA-3",
            Rule::GaFailOpen => "GA-4",
            Rule::GaWeights => "GA-5",
            Rule::GcpWaterfall => "GCP-1",
            Rule::GcpClassic => "GCP-2",
            Rule::GcpSpray => "GCP-3",
            Rule::AssumeClients => "A-1",
            Rule::AssumeResidual => "A-2",
            Rule::AssumeUnknownCapacity => "A-3",
            Rule::AssumeUnderCapacity => "A-4",
            Rule::AssumeExcess => "A-5",
            Rule::AssumeEqualCapacity => "A-6",
        }
    }

    /// What the rule says, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Rule::GaProximity => "closest endpoint group",
            Rule::GaDial => "traffic dial, rest to the next closest group",
            Rule::GaFailover => "failover among the three closest groups, dials ignored",
            Rule::GaFailOpen => "fail open to the closest group",
            Rule::GaWeights => "endpoint weights within a group",
            Rule::GcpWaterfall => "waterfall by region",
            Rule::GcpClassic => "classic: closest region with capacity",
            Rule::GcpSpray => "spray to world, by capacity",
            Rule::AssumeClients => "assumed: clients equal at each region in use",
            Rule::AssumeResidual => {
                "assumed: traffic every dial turns away stays with the closest serving group"
            }
            Rule::AssumeUnknownCapacity => {
                "assumed: backends without a capacity in requests per second never fill"
            }
            Rule::AssumeUnderCapacity => "assumed: no expectedRps, every region under capacity",
            Rule::AssumeExcess => "assumed: load above every region's capacity spreads by capacity",
            Rule::AssumeEqualCapacity => {
                "assumed: capacities unknown, so backends are weighed by capacity scaler alone"
            }
        }
    }

    /// Whether this is meridian's assumption rather than a documented rule.
    pub fn is_assumption(self) -> bool {
        self.id().starts_with("A-")
    }

    /// `GA-2 traffic dial, rest to the next closest group`.
    pub fn label(self) -> String {
        format!("{} {}", self.id(), self.title())
    }
}

/// What a prediction rests on, for humans: `` `subject`: GA-1 …; GA-2 …;
/// clients …; notes ``.
pub fn basis(subject: &str, rules: &[Rule], clients: &str, notes: &[String]) -> String {
    let mut text = format!(
        "`{subject}`: {}; {clients}",
        rules
            .iter()
            .map(|r| r.label())
            .collect::<Vec<_>>()
            .join("; ")
    );
    for note in notes {
        text.push_str("; ");
        text.push_str(note);
    }
    text
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}
