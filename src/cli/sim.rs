//! `meridian sim`: look at and poke the simulated cloud.
//!
//! Out-of-band changes go through the simulated cloud's API, as a person at
//! the console or another tool would make them, so they are counted and
//! recorded in the world's history like any other call.

use anyhow::{Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use meridian::exit;

use super::*;
use meridian_sim::world::Faults;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Show the simulated world and its API call counters.
    Show {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Change an endpoint group's traffic dial out of band.
    SetDial {
        /// Accelerator name.
        accelerator: String,
        /// AWS region of the endpoint group.
        region: String,
        /// Dial, 0-100.
        #[arg(value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
        /// Listener name (needed when the accelerator has several).
        #[arg(long)]
        listener: Option<String>,
    },
    /// Change an endpoint's weight out of band.
    SetWeight {
        /// Accelerator name.
        accelerator: String,
        /// AWS region of the endpoint group.
        region: String,
        /// Endpoint id.
        endpoint: String,
        /// Weight, 0-255.
        weight: u8,
        /// Listener name (needed when the accelerator has several).
        #[arg(long)]
        listener: Option<String>,
    },
    /// Mark every endpoint and backend of a region healthy or unhealthy.
    SetHealth {
        /// Region (AWS or GCP).
        region: String,
        /// New health.
        health: Health,
    },
    /// Inject latency, throttling and server errors into every API call.
    Faults(FaultArgs),
    /// Raise or lower the simulated account's service quotas, as a granted
    /// quota increase would (the defaults are the clouds' defaults).
    Quotas(QuotaArgs),
    /// Print the simulated clouds' API rate limits, or change them (the
    /// defaults are the clouds' documented ones; see docs/simulator.md).
    Limits(LimitArgs),
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Lift every limit.
    #[arg(long, conflicts_with = "default")]
    pub off: bool,
    /// Restore the documented limits (and turn them on).
    #[arg(long)]
    pub default: bool,
    /// Change one family: FAMILY=BURST/PER_SECOND for token buckets
    /// (e.g. ec2-mutating=50/5), FAMILY=N/min for per-minute windows
    /// (e.g. compute-reads=600/min). Repeatable.
    #[arg(long, value_name = "FAMILY=LIMIT", value_parser = meridian_sim::limits::parse_setting)]
    pub set: Vec<(String, meridian_sim::limits::Limit)>,
}

#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// Standard accelerators per account (AWS default 20).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub accelerators: Option<u32>,
    /// Listeners per accelerator (AWS default 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub listeners_per_accelerator: Option<u32>,
    /// Endpoints per endpoint group (AWS default 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub endpoints_per_group: Option<u32>,
    /// Backend services per project (GCP default 1000 here).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub backend_services: Option<u32>,
    /// Transit Gateways per region (AWS default 5).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub transit_gateways_per_region: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Health {
    Healthy,
    Unhealthy,
}

#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Added latency per call, in milliseconds.
    #[arg(long)]
    pub latency_ms: Option<u64>,
    /// Fraction of calls throttled, 0.0-1.0.
    #[arg(long, value_parser = parse_rate)]
    pub throttle_rate: Option<f64>,
    /// Fraction of calls failing with a server error, 0.0-1.0.
    #[arg(long, value_parser = parse_rate)]
    pub error_rate: Option<f64>,
    /// Fraction of writes that land but answer with a server error (a lost
    /// response), 0.0-1.0.
    #[arg(long, value_parser = parse_rate)]
    pub lost_response_rate: Option<f64>,
    /// Make an operation fail permanently (repeatable), e.g. CreateEndpointGroup.
    #[arg(long, value_name = "OPERATION")]
    pub fail_operation: Vec<String>,
    /// Make a GCP write's long-running operation end in an error instead of
    /// landing (repeatable), e.g. backendServices.patch=RESOURCE_NOT_READY:2.
    #[arg(long, value_name = "OPERATION=CODE[:TIMES]", value_parser = parse_operation_error)]
    pub operation_error: Vec<meridian_sim::world::OperationFault>,
    /// Make another writer change a backend of this GCP backend service
    /// (SERVICE or SERVICE/GROUP_SUFFIX) just before the next write to it
    /// lands (repeatable; one race each): the write's fingerprint is stale
    /// and it is answered 412.
    #[arg(long, value_name = "SERVICE[/GROUP]")]
    pub racing_write: Vec<String>,
    /// How long accelerators stay IN_PROGRESS (and GCP operations RUNNING)
    /// after a change, in milliseconds.
    #[arg(long)]
    pub deploy_delay_ms: Option<u64>,
    /// Remove every fault first.
    #[arg(long)]
    pub clear: bool,
}

pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("must be from 0.0 to 1.0, got {rate}"))
    }
}

pub async fn sim(cli: &Cli, command: &SimCommand) -> Result<u8> {
    let Some(dir) = &cli.sim else {
        bail!(
            "`meridian sim` needs the simulated cloud's directory: pass --sim DIR or set MERIDIAN_SIM"
        );
    };
    let cloud = SimCloud::new(SimStore::open(dir)?);
    let message = match command {
        SimCommand::Show { format } => {
            let mut world = (*cloud.store().read()?).clone();
            world.history = cloud.store().history()?;
            match format {
                ShowFormat::Text => print!("{}", show_text(&world)),
                ShowFormat::Json => print!("{}", show_json(&world)),
            }
            return Ok(exit::OK);
        }
        SimCommand::SetDial {
            accelerator,
            region,
            percent,
            listener,
        } => set_dial(&cloud, accelerator, listener.as_deref(), region, *percent).await?,
        SimCommand::SetWeight {
            accelerator,
            region,
            endpoint,
            weight,
            listener,
        } => {
            set_weight(
                &cloud,
                accelerator,
                listener.as_deref(),
                region,
                endpoint,
                *weight,
            )
            .await?
        }
        SimCommand::SetHealth { region, health } => {
            if !meridian::model::regions::is_aws(region)
                && !meridian::model::regions::is_gcp(region)
            {
                bail!(
                    "unknown region `{region}`: give an AWS region (e.g. eu-central-1) or a Google Cloud region (e.g. europe-west1)"
                );
            }
            set_health(&cloud, region, matches!(health, Health::Healthy))?
        }
        SimCommand::Faults(args) => {
            for operation in &args.fail_operation {
                if !meridian_sim::cloud::OPERATIONS.contains(&operation.as_str()) {
                    bail!(
                        "unknown operation `{operation}`; the simulated cloud serves: {}",
                        meridian_sim::cloud::OPERATIONS.join(", ")
                    );
                }
            }
            let settings = cloud.store().transact(|world| {
                let faults = &mut world.settings.faults;
                if args.clear {
                    *faults = Faults::default();
                }
                if let Some(v) = args.latency_ms {
                    faults.latency_ms = v
                }
                if let Some(v) = args.throttle_rate {
                    faults.throttle_rate = v
                }
                if let Some(v) = args.lost_response_rate {
                    faults.lost_response_rate = v
                }
                if let Some(v) = args.error_rate {
                    faults.error_rate = v
                }
                faults
                    .fail_operations
                    .extend(args.fail_operation.iter().cloned());
                faults
                    .operation_errors
                    .extend(args.operation_error.iter().cloned());
                faults
                    .racing_writes
                    .extend(args.racing_write.iter().cloned());
                if let Some(v) = args.deploy_delay_ms {
                    world.settings.deploy_delay_ms = v
                }
                world.settings.clone()
            })?;
            let f = &settings.faults;
            format!(
                "faults: latency {} ms, throttle rate {}, error rate {}, lost-response rate {}, failing operations [{}], operation errors [{}]; deploy delay {} ms",
                f.latency_ms,
                f.throttle_rate,
                f.error_rate,
                f.lost_response_rate,
                f.fail_operations.join(", "),
                operation_errors_text(&f.operation_errors),
                settings.deploy_delay_ms
            )
        }
        SimCommand::Limits(args) => {
            let limits = cloud.store().transact(|world| {
                let meters = &mut world.meters;
                let l = &mut world.settings.limits;
                if args.default {
                    *l = meridian_sim::limits::Limits::default();
                }
                if args.off {
                    l.off = true;
                }
                for (family, limit) in &args.set {
                    l.off = false;
                    l.overrides.insert(family.clone(), *limit);
                    let prefix = format!("{family}@");
                    meters.retain(|bucket, _| bucket != family && !bucket.starts_with(&prefix));
                }
                l.clone()
            })?;
            let mut text = if limits.off {
                "limits: off (every API call is admitted; `sim limits --default` restores the documented limits)\n".to_owned()
            } else {
                "limits (per account, EC2's per account and region; throttled calls get each cloud's own error):\n".to_owned()
            };
            for family in meridian_sim::limits::FAMILIES {
                let limit = limits.limit(family.name).unwrap_or(family.default);
                let changed = limits.overrides.contains_key(family.name);
                let _ = writeln!(
                    text,
                    "  {:<24} {:<28} {}{}",
                    family.name,
                    limit.describe(),
                    family.meters,
                    if changed {
                        format!(" [changed; default {}]", family.default.describe())
                    } else {
                        String::new()
                    }
                );
            }
            text.trim_end().to_owned()
        }
        SimCommand::Quotas(args) => {
            let quotas = cloud.store().transact(|world| {
                let q = &mut world.settings.quotas;
                let set = |slot: &mut usize, v: Option<u32>| {
                    if let Some(v) = v {
                        *slot = v as usize;
                    }
                };
                set(&mut q.accelerators, args.accelerators);
                set(
                    &mut q.listeners_per_accelerator,
                    args.listeners_per_accelerator,
                );
                set(&mut q.endpoints_per_group, args.endpoints_per_group);
                set(&mut q.backend_services, args.backend_services);
                set(
                    &mut q.transit_gateways_per_region,
                    args.transit_gateways_per_region,
                );
                q.clone()
            })?;
            format!(
                "quotas: {} accelerators, {} listeners per accelerator, {} endpoints per group, {} backend services, {} transit gateways per region",
                quotas.accelerators,
                quotas.listeners_per_accelerator,
                quotas.endpoints_per_group,
                quotas.backend_services,
                quotas.transit_gateways_per_region
            )
        }
    };
    println!("{message}");
    Ok(exit::OK)
}

use std::fmt::Write as _;

use meridian_provider::NAME_KEY;
use meridian_sim::cloud::GCP_WRITES;
use meridian_sim::world::{OperationFault, World};
use meridian_sim::{SimCloud, SimError};

/// Errors of `meridian sim` commands.
#[derive(Debug, thiserror::Error)]
pub enum SimCliError {
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is ambiguous or invalid.
    #[error("{0}")]
    Invalid(String),
    /// The simulated cloud refused.
    #[error(transparent)]
    Cloud(#[from] SimError),
}

fn accelerator_name(world: &World, arn: &str) -> String {
    world
        .accelerators
        .get(arn)
        .map(|a| {
            a.tags
                .get(NAME_KEY)
                .cloned()
                .unwrap_or_else(|| a.name.clone())
        })
        .unwrap_or_default()
}

/// meridian's name for a listener, from its accelerator's tags, by the
/// rule observation uses.
fn listener_name(world: &World, accelerator_arn: &str, listener_arn: &str) -> String {
    let suffix = listener_arn.rsplit('/').next().unwrap_or(listener_arn);
    let names = world
        .accelerators
        .get(accelerator_arn)
        .map(|a| meridian_provider::listener_names(&a.tags))
        .unwrap_or_default();
    let mut listeners: Vec<&meridian_sim::world::Listener> = world
        .listeners
        .values()
        .filter(|l| l.accelerator_arn == accelerator_arn)
        .collect();
    listeners.sort_by(|a, b| a.arn.cmp(&b.arn));
    let specs: Vec<_> = listeners.iter().map(|l| l.spec.clone()).collect();
    meridian_provider::name_listeners(&names, &specs)
        .into_iter()
        .zip(&listeners)
        .find(|(_, l)| l.arn == listener_arn)
        .and_then(|(name, _)| name)
        .unwrap_or_else(|| format!("~{suffix}"))
}

/// Finds the endpoint group ARN of `accelerator` / `listener` / `region`.
fn find_group(
    world: &World,
    accelerator: &str,
    listener: Option<&str>,
    region: &str,
) -> Result<String, SimCliError> {
    let accelerators: Vec<&meridian_sim::world::Accelerator> = world
        .accelerators
        .values()
        .filter(|a| accelerator_name(world, &a.arn) == accelerator || a.arn == accelerator)
        .collect();
    let [found] = accelerators.as_slice() else {
        let known: Vec<String> = world
            .accelerators
            .keys()
            .map(|arn| accelerator_name(world, arn))
            .collect();
        return Err(SimCliError::NotFound(format!(
            "no single accelerator named `{accelerator}`; accelerators: {}",
            if known.is_empty() {
                "(none)".to_owned()
            } else {
                known.join(", ")
            }
        )));
    };
    let listeners: Vec<(&String, String)> = world
        .listeners
        .values()
        .filter(|l| l.accelerator_arn == found.arn)
        .map(|l| (&l.arn, listener_name(world, &found.arn, &l.arn)))
        .collect();
    let chosen: Vec<&(&String, String)> = match listener {
        Some(name) => listeners.iter().filter(|(_, n)| n == name).collect(),
        None => listeners.iter().collect(),
    };
    let names: Vec<&str> = listeners.iter().map(|(_, n)| n.as_str()).collect();
    let listener_arn = match chosen.as_slice() {
        [(arn, _)] => (*arn).clone(),
        [] => {
            return Err(SimCliError::NotFound(format!(
                "accelerator `{accelerator}` has no listener {}; listeners: {}",
                listener.unwrap_or(""),
                names.join(", ")
            )));
        }
        _ => {
            return Err(SimCliError::Invalid(format!(
                "accelerator `{accelerator}` has several listeners ({}); choose one with --listener",
                names.join(", ")
            )));
        }
    };
    world
        .endpoint_groups
        .values()
        .find(|g| g.listener_arn == listener_arn && g.spec.region == region)
        .map(|g| g.arn.clone())
        .ok_or_else(|| {
            SimCliError::NotFound(format!("the listener has no endpoint group in {region}"))
        })
}

/// Sets a traffic dial out of band.
pub async fn set_dial(
    cloud: &SimCloud,
    accelerator: &str,
    listener: Option<&str>,
    region: &str,
    percent: u8,
) -> Result<String, SimCliError> {
    let world = cloud.store().read().map_err(SimError::from)?;
    let arn = find_group(&world, accelerator, listener, region)?;
    let mut spec = world
        .endpoint_groups
        .get(&arn)
        .map(|g| g.spec.clone())
        .ok_or_else(|| SimCliError::NotFound(arn.clone()))?;
    let before = spec.traffic_dial;
    spec.traffic_dial = percent;
    cloud.update_endpoint_group(&arn, &spec, None).await?;
    Ok(format!(
        "{accelerator} {region}: traffic dial {before} -> {percent}"
    ))
}

/// Sets an endpoint weight out of band.
pub async fn set_weight(
    cloud: &SimCloud,
    accelerator: &str,
    listener: Option<&str>,
    region: &str,
    endpoint: &str,
    weight: u8,
) -> Result<String, SimCliError> {
    let world = cloud.store().read().map_err(SimError::from)?;
    let arn = find_group(&world, accelerator, listener, region)?;
    let group = world
        .endpoint_groups
        .get(&arn)
        .ok_or_else(|| SimCliError::NotFound(arn.clone()))?;
    let existing = group
        .endpoints
        .iter()
        .find(|e| e.spec.id == endpoint)
        .ok_or_else(|| {
            let ids: Vec<&str> = group.endpoints.iter().map(|e| e.spec.id.as_str()).collect();
            SimCliError::NotFound(format!(
                "no endpoint `{endpoint}` in {region}; endpoints: {}",
                ids.join(", ")
            ))
        })?;
    let mut spec = existing.spec.clone();
    let before = spec.weight;
    spec.weight = weight;
    cloud.add_endpoints(&arn, &[spec]).await?;
    Ok(format!(
        "{accelerator} {region} {endpoint}: weight {before} -> {weight}"
    ))
}

/// Parses `OPERATION=CODE[:TIMES]` (`sim faults --operation-error`), e.g.
/// `backendServices.patch=RESOURCE_NOT_READY:2`; TIMES defaults to 1.
pub fn parse_operation_error(text: &str) -> Result<OperationFault, String> {
    let (operation, rest) = text.split_once('=').ok_or_else(|| {
        format!(
            "expected OPERATION=CODE[:TIMES], e.g. backendServices.patch=RESOURCE_NOT_READY:2, got `{text}`"
        )
    })?;
    if !GCP_WRITES.contains(&operation) {
        return Err(format!(
            "`{operation}` is not a GCP write with an operation; one of: {}",
            GCP_WRITES.join(", ")
        ));
    }
    let (code, times) = match rest.split_once(':') {
        None => (rest, 1),
        Some((code, times)) => (
            code,
            times
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("TIMES must be a whole number from 1, got `{times}`"))?,
        ),
    };
    if code.is_empty()
        || !code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "CODE must be an upper-case error code such as RESOURCE_NOT_READY or QUOTA_EXCEEDED, got `{code}`"
        ));
    }
    Ok(OperationFault {
        operation: operation.to_owned(),
        code: code.to_owned(),
        message: format!("{code}: operation error injected into {operation} by the simulator"),
        times,
    })
}

/// `operation=CODE:times, …` of pending operation errors, for messages.
pub fn operation_errors_text(faults: &[OperationFault]) -> String {
    faults
        .iter()
        .map(|f| format!("{}={}:{}", f.operation, f.code, f.times))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Marks a region healthy or unhealthy.
pub fn set_health(cloud: &SimCloud, region: &str, healthy: bool) -> Result<String, SimCliError> {
    cloud
        .store()
        .transact(|world| {
            if healthy {
                world.unhealthy_regions.remove(region);
            } else {
                world.unhealthy_regions.insert(region.to_owned(), true);
            }
            world.record(
                "SetRegionHealth",
                region,
                if healthy { "healthy" } else { "unhealthy" },
            );
        })
        .map_err(SimError::from)?;
    Ok(format!(
        "{region} is now {}",
        if healthy { "healthy" } else { "unhealthy" }
    ))
}

/// The world as text.
pub fn show_text(world: &World) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Global Accelerator");
    if world.accelerators.is_empty() {
        let _ = writeln!(out, "  (no accelerators)");
    }
    for accelerator in world.accelerators.values() {
        let _ = writeln!(
            out,
            "  {} {} enabled={} status={} owner={}",
            accelerator_name(world, &accelerator.arn),
            accelerator.arn,
            accelerator.enabled,
            World::accelerator_status(accelerator),
            accelerator
                .tags
                .get(meridian_provider::OWNER_KEY)
                .map_or("(not meridian)", String::as_str)
        );
        for listener in world
            .listeners
            .values()
            .filter(|l| l.accelerator_arn == accelerator.arn)
        {
            let ports: Vec<String> = listener
                .spec
                .port_ranges
                .iter()
                .map(|r| {
                    if r.from == r.to {
                        r.from.to_string()
                    } else {
                        format!("{}-{}", r.from, r.to)
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "    listener {} {} {}",
                listener_name(world, &accelerator.arn, &listener.arn),
                listener.spec.protocol,
                ports.join(",")
            );
            for group in world
                .endpoint_groups
                .values()
                .filter(|g| g.listener_arn == listener.arn)
            {
                let _ = writeln!(
                    out,
                    "      {} dial={} health-check={} {}",
                    group.spec.region,
                    group.spec.traffic_dial,
                    group.spec.health_check.protocol,
                    group.spec.health_check.port
                );
                for endpoint in &group.endpoints {
                    let _ = writeln!(
                        out,
                        "        {} weight={} {}",
                        endpoint.spec.id,
                        endpoint.spec.weight,
                        world.endpoint_health(&group.spec.region, endpoint)
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "GCP load balancing");
    for check in world.health_checks.values() {
        let _ = writeln!(
            out,
            "  health check {}/{} {} port={}",
            check.spec.project, check.name, check.spec.check_type, check.spec.port
        );
    }
    for service in world.backend_services.values() {
        let _ = writeln!(
            out,
            "  backend service {}/{} {} fingerprint={}",
            service.spec.project, service.name, service.spec.protocol, service.fingerprint
        );
        for backend in &service.backends {
            let _ = writeln!(
                out,
                "    {} {} scaler={} {}",
                backend.group,
                backend.balancing_mode,
                backend.capacity_scaler,
                world.backend_health(backend)
            );
        }
    }
    for map in world.url_maps.values() {
        let _ = writeln!(
            out,
            "  url map {}/{} default={}",
            map.spec.project, map.name, map.spec.default_service
        );
    }
    let _ = writeln!(out, "Transit Gateway");
    for tgw in world.transit_gateways.values() {
        let _ = writeln!(
            out,
            "  {} {} asn={}",
            tgw.id, tgw.region, tgw.amazon_side_asn
        );
    }
    for peering in world.peerings.values() {
        let _ = writeln!(
            out,
            "  {} {} -> {} {}",
            peering.id,
            peering.requester_region,
            peering.accepter_region,
            World::peering_state(peering)
        );
    }
    for route in world.routes.values() {
        let _ = writeln!(
            out,
            "  route {} {} -> {}",
            route.route_table_id, route.cidr, route.attachment_id
        );
    }
    let unhealthy: Vec<&String> = world.unhealthy_regions.keys().collect();
    let faults = &world.settings.faults;
    let _ = writeln!(
        out,
        "Health: {}",
        if unhealthy.is_empty() {
            "all regions healthy".to_owned()
        } else {
            format!(
                "unhealthy: {}",
                unhealthy
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let _ = writeln!(
        out,
        "Faults: latency {} ms, throttle rate {}, error rate {}, lost-response rate {}{}",
        faults.latency_ms,
        faults.throttle_rate,
        faults.error_rate,
        faults.lost_response_rate,
        if faults.fail_operations.is_empty() {
            String::new()
        } else {
            format!(", failing: {}", faults.fail_operations.join(", "))
        }
    );
    if !faults.operation_errors.is_empty() {
        let _ = writeln!(
            out,
            "Operation errors: {}",
            operation_errors_text(&faults.operation_errors)
        );
    }
    let _ = writeln!(
        out,
        "API calls: {} reads, {} writes",
        world.total_calls(false),
        world.total_calls(true)
    );
    for (operation, count) in &world.calls {
        let _ = writeln!(
            out,
            "  {operation:<45} {:<5} ok={} throttled={} failed={}",
            if count.write { "write" } else { "read" },
            count.ok,
            count.throttled,
            count.failed
        );
    }
    out
}

/// The world as JSON, with call totals.
pub fn show_json(world: &World) -> String {
    let mut value = serde_json::to_value(world).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "call_totals".to_owned(),
            serde_json::json!({"read": world.total_calls(false), "write": world.total_calls(true)}),
        );
    }
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_errors_parse_with_a_default_of_one_time() {
        let fault =
            parse_operation_error("backendServices.patch=RESOURCE_NOT_READY").expect("valid");
        assert_eq!(
            (fault.operation.as_str(), fault.code.as_str(), fault.times),
            ("backendServices.patch", "RESOURCE_NOT_READY", 1)
        );
        assert_eq!(
            parse_operation_error("urlMaps.insert=QUOTA_EXCEEDED:3")
                .expect("valid")
                .times,
            3
        );
        for bad in [
            "backendServices.patch",
            "backendServices.list=X",
            "CreateListener=X",
            "urlMaps.insert=not-a-code",
            "urlMaps.insert=X:0",
            "urlMaps.insert=X:many",
        ] {
            assert!(parse_operation_error(bad).is_err(), "{bad}");
        }
    }
}
