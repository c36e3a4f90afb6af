//! API rate limits of the simulated clouds, as the clouds document them.
//!
//! Every API call belongs to one *family* — a bucket or window the real cloud
//! meters it in — and is refused with the cloud's own throttling error when
//! the family has no capacity left:
//!
//! * EC2 (Transit Gateway calls): token buckets, 50 burst / 5 per second for
//!   mutating actions and 100 / 20 per second for non-mutating ones ("Request
//!   throttling for the Amazon EC2 API");
//! * Compute Engine: per-minute windows per quota group, refilled at the
//!   start of the next minute (1,500 requests per minute for mutations,
//!   `*.get`, `*.list` and operation reads: "Compute Engine rate quotas");
//! * Global Accelerator: AWS publishes no rate limit; the sandbox uses a
//!   stand-in token bucket of 100 burst / 20 per second.
//!
//! The state of every bucket lives in the world, so several processes on one
//! directory share it, as the clients of one account share the cloud's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::world::Table;

/// How a family is metered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Limit {
    /// A token bucket: `burst` tokens, refilled at `per_second`.
    Bucket {
        /// Bucket size.
        burst: f64,
        /// Refill rate.
        per_second: f64,
    },
    /// A fixed window of `per_minute` requests, refilled at each minute.
    PerMinute {
        /// Requests per minute.
        per_minute: u32,
    },
}

impl Limit {
    /// `50 burst / 5 per second` or `1500 per minute`.
    pub fn describe(&self) -> String {
        match self {
            Limit::Bucket { burst, per_second } => {
                format!("{burst} burst / {per_second} per second")
            }
            Limit::PerMinute { per_minute } => format!("{per_minute} per minute"),
        }
    }
}

/// One family: its name, the cloud's wording and where the number comes from.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Name, for `sim limits --set FAMILY=…`.
    pub name: &'static str,
    /// What it meters.
    pub meters: &'static str,
    /// The documented default.
    pub default: Limit,
    /// Where the default comes from.
    pub source: &'static str,
}

/// Every family, with its documented default.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "ec2-mutating",
        meters: "EC2 mutating actions (Create/Modify/Delete/Accept/Replace Transit Gateway …)",
        default: Limit::Bucket {
            burst: 50.0,
            per_second: 5.0,
        },
        source: "Amazon EC2 API Reference, \"Request throttling for the Amazon EC2 API\": mutating actions, bucket size 50, refill rate 5 per second",
    },
    Family {
        name: "ec2-non-mutating",
        meters: "EC2 non-mutating actions (Describe*, Search*)",
        default: Limit::Bucket {
            burst: 100.0,
            per_second: 20.0,
        },
        source: "Amazon EC2 API Reference, \"Request throttling for the Amazon EC2 API\": non-mutating actions, bucket size 100, refill rate 20 per second",
    },
    Family {
        name: "globalaccelerator",
        meters: "every Global Accelerator action",
        default: Limit::Bucket {
            burst: 100.0,
            per_second: 20.0,
        },
        source: "a stand-in: AWS publishes no Global Accelerator request rate; the sandbox uses EC2's non-mutating bucket",
    },
    Family {
        name: "compute-mutations",
        meters: "Compute Engine global mutation methods (insert, patch, update, delete)",
        default: Limit::PerMinute { per_minute: 1500 },
        source: "Compute Engine rate quotas: compute.googleapis.com/default, 1,500 requests per minute per project",
    },
    Family {
        name: "compute-reads",
        meters: "Compute Engine *.get methods (and backendServices.getHealth)",
        default: Limit::PerMinute { per_minute: 1500 },
        source: "Compute Engine rate quotas: compute.googleapis.com/read_requests, 1,500 requests per minute per project",
    },
    Family {
        name: "compute-lists",
        meters: "Compute Engine *.list methods",
        default: Limit::PerMinute { per_minute: 1500 },
        source: "Compute Engine rate quotas: compute.googleapis.com/list_requests, 1,500 requests per minute per project",
    },
    Family {
        name: "compute-operation-reads",
        meters: "Compute Engine globalOperations.get and .wait",
        default: Limit::PerMinute { per_minute: 1500 },
        source: "Compute Engine rate quotas: compute.googleapis.com/operation_read_requests, 1,500 requests per minute per project",
    },
];

/// The family an operation is metered in.
pub fn family_of(operation: &str, write: bool) -> &'static str {
    if operation.contains("TransitGateway") || operation == "DescribeRegions" {
        if write {
            "ec2-mutating"
        } else {
            "ec2-non-mutating"
        }
    } else if operation.starts_with("globalOperations.") {
        "compute-operation-reads"
    } else if operation.contains('.') {
        if operation.ends_with(".list") || operation.ends_with(".aggregatedList") {
            "compute-lists"
        } else if write {
            "compute-mutations"
        } else {
            "compute-reads"
        }
    } else {
        "globalaccelerator"
    }
}

/// The meter a call of `family` made in `region` draws from: EC2 meters
/// each region apart ("per account, per Region"); the other families are
/// one meter per account (Global Accelerator is a global service; Compute
/// Engine's rate quotas are per project).
pub fn bucket_of(family: &str, region: Option<&str>) -> String {
    match region {
        Some(region) if family.starts_with("ec2-") => format!("{family}@{region}"),
        _ => family.to_owned(),
    }
}

/// The state of one family's bucket or window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Meter {
    /// Tokens left at `at_ms`.
    Bucket {
        /// Tokens.
        tokens: f64,
        /// When they were counted, milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// Requests used in the minute `minute` (minutes since the Unix epoch).
    Window {
        /// Minute.
        minute: u64,
        /// Requests used.
        used: u32,
    },
}

/// The account's limits: on or off, and overrides. The meters are rows of
/// their own ([`World::meters`](crate::world::World::meters)), since every
/// call moves one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Every limit lifted (`sim limits --off`).
    pub off: bool,
    /// Families set to something else than their documented default.
    pub overrides: BTreeMap<String, Limit>,
}

impl Limits {
    /// The limit in force for a family.
    pub fn limit(&self, family: &str) -> Option<Limit> {
        self.overrides.get(family).copied().or_else(|| {
            FAMILIES
                .iter()
                .find(|f| f.name == family)
                .map(|f| f.default)
        })
    }

    /// Takes one request of `family` from the meter `bucket` (the family,
    /// or the family in one region) at `now_ms`: `Ok(())`, or how many
    /// milliseconds until one would be available.
    pub fn take(
        &self,
        meters: &mut Table<Meter>,
        bucket: &str,
        family: &str,
        now_ms: u64,
    ) -> Result<(), u64> {
        if self.off {
            return Ok(());
        }
        let Some(limit) = self.limit(family) else {
            return Ok(());
        };
        match limit {
            Limit::Bucket { burst, per_second } => {
                let (tokens, at) = match meters.get(bucket) {
                    Some(Meter::Bucket { tokens, at_ms }) => (*tokens, *at_ms),
                    _ => (burst, now_ms),
                };
                let elapsed = now_ms.saturating_sub(at) as f64 / 1000.0;
                let tokens = (tokens + elapsed * per_second).min(burst);
                if tokens >= 1.0 {
                    meters.insert(
                        bucket.to_owned(),
                        Meter::Bucket {
                            tokens: tokens - 1.0,
                            at_ms: now_ms,
                        },
                    );
                    Ok(())
                } else {
                    meters.insert(
                        bucket.to_owned(),
                        Meter::Bucket {
                            tokens,
                            at_ms: now_ms,
                        },
                    );
                    let wait = if per_second > 0.0 {
                        ((1.0 - tokens) / per_second * 1000.0).ceil() as u64
                    } else {
                        u64::MAX
                    };
                    Err(wait.max(1))
                }
            }
            Limit::PerMinute { per_minute } => {
                let minute = now_ms / 60_000;
                let used = match meters.get(bucket) {
                    Some(Meter::Window { minute: m, used }) if *m == minute => *used,
                    _ => 0,
                };
                if used < per_minute {
                    meters.insert(
                        bucket.to_owned(),
                        Meter::Window {
                            minute,
                            used: used + 1,
                        },
                    );
                    Ok(())
                } else {
                    Err((minute + 1) * 60_000 - now_ms)
                }
            }
        }
    }
}

/// Parses `FAMILY=BURST/PER_SECOND` (token-bucket families) or
/// `FAMILY=N/min` (per-minute families).
pub fn parse_setting(text: &str) -> Result<(String, Limit), String> {
    let names = || {
        FAMILIES
            .iter()
            .map(|f| f.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (name, value) = text.split_once('=').ok_or_else(|| {
        format!(
            "`{text}`: give FAMILY=BURST/PER_SECOND (e.g. ec2-mutating=50/5) or FAMILY=N/min (e.g. compute-reads=600/min); families: {}",
            names()
        )
    })?;
    let family = FAMILIES
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| format!("unknown limit family `{name}`; families: {}", names()))?;
    let (a, b) = value
        .split_once('/')
        .ok_or_else(|| format!("`{value}`: give BURST/PER_SECOND or N/min"))?;
    match family.default {
        Limit::Bucket { .. } => {
            let burst: f64 = a
                .parse()
                .map_err(|_| format!("`{a}`: the burst must be a number"))?;
            let per_second: f64 = b
                .parse()
                .map_err(|_| format!("`{b}`: the refill rate must be a number per second"))?;
            if !(burst >= 1.0 && burst.is_finite() && per_second > 0.0 && per_second.is_finite()) {
                return Err(format!(
                    "`{value}`: the burst must be at least 1 and the refill rate above 0"
                ));
            }
            Ok((name.to_owned(), Limit::Bucket { burst, per_second }))
        }
        Limit::PerMinute { .. } => {
            if b != "min" {
                return Err(format!(
                    "`{value}`: {name} is metered per minute; give N/min, e.g. 600/min"
                ));
            }
            let per_minute: u32 = a
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("`{a}`: give a whole number of requests, at least 1"))?;
            Ok((name.to_owned(), Limit::PerMinute { per_minute }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_refill_rate() {
        let mut limits = Limits::default();
        let mut meters = Table::default();
        limits.overrides.insert(
            "ec2-mutating".into(),
            Limit::Bucket {
                burst: 50.0,
                per_second: 5.0,
            },
        );
        for _ in 0..50 {
            assert_eq!(
                limits.take(&mut meters, "ec2-mutating", "ec2-mutating", 1_000),
                Ok(())
            );
        }
        // The 51st waits 1/5 s for a token.
        assert_eq!(
            limits.take(&mut meters, "ec2-mutating", "ec2-mutating", 1_000),
            Err(200)
        );
        assert_eq!(
            limits.take(&mut meters, "ec2-mutating", "ec2-mutating", 1_200),
            Ok(())
        );
        assert!(
            limits
                .take(&mut meters, "ec2-mutating", "ec2-mutating", 1_200)
                .is_err()
        );
        // Off lifts it.
        limits.off = true;
        assert_eq!(
            limits.take(&mut meters, "ec2-mutating", "ec2-mutating", 1_200),
            Ok(())
        );
    }

    #[test]
    fn each_bucket_meters_apart() {
        let limits = Limits::default();
        let mut meters = Table::default();
        for _ in 0..50 {
            let taken = limits.take(&mut meters, "ec2-mutating@us-east-1", "ec2-mutating", 1_000);
            assert_eq!(taken, Ok(()));
        }
        assert!(
            limits
                .take(&mut meters, "ec2-mutating@us-east-1", "ec2-mutating", 1_000)
                .is_err()
        );
        // Another region has its own bucket.
        let other = limits.take(&mut meters, "ec2-mutating@eu-west-1", "ec2-mutating", 1_000);
        assert_eq!(other, Ok(()));
    }

    #[test]
    fn a_window_refills_at_the_next_minute() {
        let mut limits = Limits::default();
        let mut meters = Table::default();
        limits
            .overrides
            .insert("compute-reads".into(), Limit::PerMinute { per_minute: 2 });
        assert_eq!(
            limits.take(
                &mut meters,
                "compute-reads",
                "compute-reads",
                60_000 * 7 + 100
            ),
            Ok(())
        );
        assert_eq!(
            limits.take(
                &mut meters,
                "compute-reads",
                "compute-reads",
                60_000 * 7 + 200
            ),
            Ok(())
        );
        assert_eq!(
            limits.take(
                &mut meters,
                "compute-reads",
                "compute-reads",
                60_000 * 7 + 59_000
            ),
            Err(1_000)
        );
        assert_eq!(
            limits.take(&mut meters, "compute-reads", "compute-reads", 60_000 * 8),
            Ok(())
        );
    }

    #[test]
    fn operations_fall_in_their_clouds_families() {
        assert_eq!(family_of("CreateTransitGateway", true), "ec2-mutating");
        assert_eq!(
            family_of("DescribeTransitGateways", false),
            "ec2-non-mutating"
        );
        assert_eq!(
            family_of("backendServices.patch", true),
            "compute-mutations"
        );
        assert_eq!(
            family_of("backendServices.getHealth", false),
            "compute-reads"
        );
        assert_eq!(family_of("urlMaps.list", false), "compute-lists");
        assert_eq!(
            family_of("globalOperations.wait", false),
            "compute-operation-reads"
        );
        assert_eq!(family_of("CreateAccelerator", true), "globalaccelerator");
    }

    #[test]
    fn settings_are_parsed_in_each_familys_unit() {
        assert_eq!(
            parse_setting("ec2-mutating=50/5"),
            Ok((
                "ec2-mutating".into(),
                Limit::Bucket {
                    burst: 50.0,
                    per_second: 5.0
                }
            ))
        );
        assert_eq!(
            parse_setting("compute-reads=600/min"),
            Ok(("compute-reads".into(), Limit::PerMinute { per_minute: 600 }))
        );
        assert!(parse_setting("compute-reads=600/5").is_err());
        assert!(parse_setting("nope=1/1").is_err());
        assert!(parse_setting("ec2-mutating=0/5").is_err());
    }
}
