//! Semantic validation: the rules a schema cannot express.
//!
//! Runs only on structurally valid documents, reports every problem at once,
//! and never touches the network. Messages say what is wrong and what is
//! allowed, so the user can fix the file without reading docs.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use super::raw::{
    BalancingMode, GaHealthCheckProtocol, GcpProtocol, HealthCheckDocSpec, LoadBalancingScheme,
    ProviderType, Selector, TrafficKind,
};
use super::{DesiredState, Diagnostic, Located};
use meridian_provider::regions::{self, parse_backend_group};

/// The label that selects data-residency policies.
pub const CLASSIFICATION_LABEL: &str = "meridian.dev/data-classification";

/// Validates cross-field and cross-document rules.
pub fn validate(state: &DesiredState) -> Vec<Diagnostic> {
    let mut v = Validator {
        state,
        out: Vec::new(),
    };
    v.names();
    v.providers();
    v.accelerators();
    v.health_checks();
    v.backend_services();
    v.url_maps();
    v.meshes();
    v.traffic_policies();
    v.residency_policies();
    v.client_populations();
    v.out
}

struct Validator<'a> {
    state: &'a DesiredState,
    out: Vec<Diagnostic>,
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

/// Parses `a.b.c.d/n`.
pub fn parse_cidr(text: &str) -> Option<(u32, u32)> {
    let (address, prefix) = text.split_once('/')?;
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let bits = u32::from(address);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (bits & !mask == 0).then_some((bits, prefix))
}

fn cidrs_overlap(a: (u32, u32), b: (u32, u32)) -> bool {
    let prefix = a.1.min(b.1);
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    a.0 & mask == b.0 & mask
}

fn valid_cron_field(field: &str, lo: u32, hi: u32) -> bool {
    field.split(',').all(|part| {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if step.is_some_and(|s| s.parse::<u32>().map_or(true, |s| s == 0)) {
            return false;
        }
        if range == "*" {
            return true;
        }
        let ok = |n: &str| n.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n));
        match range.split_once('-') {
            Some((a, b)) => ok(a) && ok(b),
            None => ok(range),
        }
    })
}

/// Whether a five-field cron expression is valid (names for days and months allowed).
pub fn valid_cron(expression: &str) -> bool {
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return false;
    }
    let mut month = fields[3].to_ascii_uppercase();
    for (i, name) in MONTHS.iter().enumerate() {
        month = month.replace(name, &(i + 1).to_string());
    }
    let mut day = fields[4].to_ascii_uppercase();
    for (i, name) in DAYS.iter().enumerate() {
        day = day.replace(name, &i.to_string());
    }
    valid_cron_field(fields[0], 0, 59)
        && valid_cron_field(fields[1], 0, 23)
        && valid_cron_field(fields[2], 1, 31)
        && valid_cron_field(&month, 1, 12)
        && valid_cron_field(&day, 0, 7)
}

fn health_check_block(spec: &HealthCheckDocSpec) -> [(GcpProtocol, &'static str, bool); 6] {
    [
        (
            GcpProtocol::Http,
            "httpHealthCheck",
            spec.http_health_check.is_some(),
        ),
        (
            GcpProtocol::Https,
            "httpsHealthCheck",
            spec.https_health_check.is_some(),
        ),
        (
            GcpProtocol::Http2,
            "http2HealthCheck",
            spec.http2_health_check.is_some(),
        ),
        (
            GcpProtocol::Tcp,
            "tcpHealthCheck",
            spec.tcp_health_check.is_some(),
        ),
        (
            GcpProtocol::Ssl,
            "sslHealthCheck",
            spec.ssl_health_check.is_some(),
        ),
        (
            GcpProtocol::Grpc,
            "grpcHealthCheck",
            spec.grpc_health_check.is_some(),
        ),
    ]
}

fn endpoint_id_region(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("arn:aws:elasticloadbalancing:")?;
    rest.split(':').next()
}

impl Validator<'_> {
    fn push<S>(&mut self, doc: &Located<S>, path: &str, message: impl Into<String>) {
        self.out.push(doc.diagnostic(path, message));
    }

    /// A client declaration: locations the traffic model knows, shares above 0.
    fn clients<S>(&mut self, doc: &Located<S>, path: &str, clients: &BTreeMap<String, f64>) {
        if clients.is_empty() {
            self.push(
                doc,
                path,
                "declares no client location; give shares by region (e.g. `{us-east-1: 40, eu-central-1: 35, ap-southeast-1: 25}`) or remove the field to use the default (equal shares at each region in use)",
            );
        }
        for (location, share) in clients {
            let at = format!("{path}.{location}");
            if !regions::is_aws(location) && !regions::is_gcp(location) {
                self.push(
                    doc,
                    &at,
                    format!(
                        "unknown client location `{location}`: give an AWS or Google Cloud region name (the clients near that region's city), e.g. us-east-1, eu-central-1, ap-southeast-1 or europe-west1"
                    ),
                );
            }
            if !share.is_finite() || *share <= 0.0 {
                self.push(
                    doc,
                    &at,
                    format!(
                        "must be above 0 (a relative share of the clients, e.g. a percentage), got {share}; remove locations without clients"
                    ),
                );
            }
        }
    }

    /// `meridian.dev/` annotations: only those meridian reads, with values
    /// it can read, on kinds they apply to.
    fn annotations<S>(&mut self, kind: &str, doc: &Located<S>) {
        for (key, value) in &doc.doc.metadata.annotations {
            if !key.starts_with("meridian.dev/") {
                continue;
            }
            let path = format!("metadata.annotations.{key}");
            match key.as_str() {
                super::MANAGEMENT_KEY => self.management(kind, doc, &path, value),
                super::EXTERNAL_ID_KEY => {
                    if let Err(message) = super::external_ids(kind, doc.name(), value) {
                        self.push(doc, &path, message);
                    }
                }
                super::ALLOW_REPLACE_KEY => {
                    if !matches!(kind, "GlobalAccelerator" | "Provider") {
                        self.push(doc, &path, format!("`{key}` acknowledges what a replacement or the deletion of an adopted object loses: it goes on the GlobalAccelerator that replaces it, or on the Provider of what is deleted, not on a {kind}"));
                    } else if let Err(message) = super::acknowledged_addresses(value) {
                        self.push(doc, &path, message);
                    }
                }
                _ => self.push(
                    doc,
                    &path,
                    format!(
                        "unknown annotation `{key}`: meridian reads `{}`, `{}` and `{}` (annotations under meridian.dev/ are meridian's; use another prefix for your own)",
                        super::MANAGEMENT_KEY,
                        super::EXTERNAL_ID_KEY,
                        super::ALLOW_REPLACE_KEY
                    ),
                ),
            }
        }
    }

    fn management<S>(&mut self, kind: &str, doc: &Located<S>, path: &str, value: &str) {
        let Some(mode) = super::Management::parse(value) else {
            self.push(
                doc,
                path,
                format!(
                    "`{value}` is not a management mode: use {}",
                    super::Management::ALLOWED
                ),
            );
            return;
        };
        let applies = match mode {
            super::Management::Full => true,
            super::Management::Observe => matches!(
                kind,
                "GlobalAccelerator" | "BackendService" | "HealthCheck" | "UrlMap"
            ),
            super::Management::Traffic => {
                matches!(kind, "GlobalAccelerator" | "BackendService")
            }
        };
        if !applies {
            let kinds = if mode == super::Management::Traffic {
                "GlobalAccelerator and BackendService documents (the kinds with traffic levers)"
            } else {
                "GlobalAccelerator, BackendService, HealthCheck and UrlMap documents"
            };
            self.push(
                doc,
                path,
                format!("`{}` applies to {kinds}, not to a {kind}", mode.as_str()),
            );
        }
    }

    fn duplicates<S>(&mut self, kind: &str, docs: &[Located<S>]) {
        let mut seen: HashMap<&str, &Located<S>> = HashMap::new();
        for doc in docs {
            self.annotations(kind, doc);
            if !valid_name(doc.name()) {
                self.push(doc, "metadata.name", format!("`{}` is not a valid name: use 1-63 lowercase letters, digits and `-`, starting with a letter and not ending with `-`", doc.name()));
            }
            if let Some(first) = seen.get(doc.name()) {
                let message = format!(
                    "duplicate {kind} name `{}`; it is already defined at {}:{}",
                    doc.name(),
                    first.file,
                    first.pos
                );
                self.push(doc, "metadata.name", message);
            } else {
                seen.insert(doc.name(), doc);
            }
        }
    }

    fn names(&mut self) {
        let s = self.state;
        self.duplicates("Provider", &s.providers);
        self.duplicates("GlobalAccelerator", &s.accelerators);
        self.duplicates("HealthCheck", &s.health_checks);
        self.duplicates("BackendService", &s.backend_services);
        self.duplicates("UrlMap", &s.url_maps);
        self.duplicates("TransitGatewayMesh", &s.meshes);
        self.duplicates("TrafficPolicy", &s.traffic_policies);
        self.duplicates("DataResidencyPolicy", &s.residency_policies);
        self.duplicates("ClientPopulation", &s.client_populations);
        self.unique_pins();
    }

    /// Checks that `name` names a provider of an allowed type.
    fn provider_ref<S>(&mut self, doc: &Located<S>, name: &str, allowed: &[ProviderType]) {
        if self.state.partial {
            return;
        }
        let names: Vec<&str> = self.state.providers.iter().map(|p| p.name()).collect();
        match self.state.provider(name) {
            None => self.push(
                doc,
                "spec.provider",
                format!(
                    "no Provider document named `{name}`; defined providers: {}",
                    if names.is_empty() {
                        "(none)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ),
            Some(provider) if !allowed.contains(&provider.doc.spec.provider_type) => {
                let kinds: Vec<String> = allowed
                    .iter()
                    .map(|t| format!("{t:?}").to_ascii_lowercase())
                    .collect();
                let message = format!("provider `{name}` has type {:?}, which cannot manage this kind; allowed types: {}", provider.doc.spec.provider_type, kinds.join(", ")).replace("type Aws", "type aws").replace("type Gcp", "type gcp");
                self.push(doc, "spec.provider", message);
            }
            Some(_) => {}
        }
    }

    /// One live object, one document: a pin (`meridian.dev/external-id`)
    /// named twice would have one document take the object and the other
    /// create a new one.
    fn unique_pins(&mut self) {
        let s = self.state;
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut check = |this: &mut Self,
                         kind: &str,
                         metadata: &super::raw::Metadata,
                         at: Diagnostic| {
            let Some(value) = metadata.annotations.get(super::EXTERNAL_ID_KEY) else {
                return;
            };
            for pin in super::external_ids(kind, &metadata.name, value).unwrap_or_default() {
                let id = pin
                    .split_once('=')
                    .map_or(pin.as_str(), |(_, id)| id)
                    .to_owned();
                let here = format!("{kind}/{}", metadata.name);
                if let Some(first) = seen.get(&id) {
                    this.out.push(Diagnostic {
                        message: format!("`{id}` is already pinned by {first}: one live object, one document (the other would create a new one)"),
                        ..at.clone()
                    });
                } else {
                    seen.insert(id, here);
                }
            }
        };
        let path = format!("metadata.annotations.{}", super::EXTERNAL_ID_KEY);
        for d in &s.accelerators {
            check(
                self,
                "GlobalAccelerator",
                &d.doc.metadata,
                d.diagnostic(&path, ""),
            );
        }
        for d in &s.health_checks {
            check(
                self,
                "HealthCheck",
                &d.doc.metadata,
                d.diagnostic(&path, ""),
            );
        }
        for d in &s.backend_services {
            check(
                self,
                "BackendService",
                &d.doc.metadata,
                d.diagnostic(&path, ""),
            );
        }
        for d in &s.url_maps {
            check(self, "UrlMap", &d.doc.metadata, d.diagnostic(&path, ""));
        }
        for d in &s.meshes {
            check(
                self,
                "TransitGatewayMesh",
                &d.doc.metadata,
                d.diagnostic(&path, ""),
            );
        }
    }

    fn providers(&mut self) {
        for p in &self.state.providers {
            let spec = &p.doc.spec;
            if spec.region.is_some() {
                self.push(
                    p,
                    "spec.region",
                    match spec.provider_type {
                        ProviderType::Aws => "`region` is not a setting: Global Accelerator's API is served only from us-west-2, which meridian always calls, and each Transit Gateway's region comes from its TransitGatewayMesh; remove the field",
                        ProviderType::Gcp => "`region` is not a setting: global load balancing has no region; a gcp provider takes `project`",
                    },
                );
            }
            match (spec.provider_type, &spec.project) {
                (ProviderType::Gcp, None) => self.push(
                    p,
                    "spec.project",
                    "missing required field `project` for a gcp provider",
                ),
                (ProviderType::Aws, Some(_)) => self.push(
                    p,
                    "spec.project",
                    "`project` is a GCP setting; an aws provider takes `profile`",
                ),
                (_, Some(project)) => {
                    let ok = project.len() >= 6
                        && project.len() <= 30
                        && project.starts_with(|c: char| c.is_ascii_lowercase())
                        && project
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                    if !ok {
                        self.push(p, "spec.project", format!("`{project}` is not a GCP project id: 6-30 lowercase letters, digits and `-`, starting with a letter"));
                    }
                }
                _ => {}
            }
            if let Some(owner) = &spec.owner {
                let ok = !owner.is_empty()
                    && owner.len() <= 128
                    && owner
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
                if !ok {
                    self.push(p, "spec.owner", format!("`{owner}` is not a valid owner: 1-128 letters, digits, `-`, `_`, `.` and `/` (it is written into cloud tags)"));
                }
            }
            if let Some(endpoints) = &spec.endpoints {
                for (field, url) in [
                    ("globalaccelerator", &endpoints.globalaccelerator),
                    ("ec2", &endpoints.ec2),
                    ("compute", &endpoints.compute),
                ] {
                    if let Some(url) = url
                        && !(url.starts_with("http://") || url.starts_with("https://"))
                    {
                        self.push(
                            p,
                            &format!("spec.endpoints.{field}"),
                            format!("`{url}` is not an http:// or https:// URL"),
                        );
                    }
                }
            }
            // Their range (10, the AWS default, to 1000) is the schema's.
            if spec.quotas.is_some() && spec.provider_type == ProviderType::Gcp {
                self.push(
                    p,
                    "spec.quotas",
                    "`quotas` are Global Accelerator quotas; a gcp provider has none to declare",
                );
            }
            if let Some(limit) = &spec.rate_limit {
                if !(limit.requests_per_second > 0.0 && limit.requests_per_second <= 10_000.0) {
                    self.push(
                        p,
                        "spec.rateLimit.requestsPerSecond",
                        format!(
                            "must be above 0 and at most 10000, got {}",
                            limit.requests_per_second
                        ),
                    );
                }
                if limit.burst == 0 {
                    self.push(p, "spec.rateLimit.burst", "must be at least 1, got 0");
                }
            }
        }
    }

    fn accelerators(&mut self) {
        for ga in &self.state.accelerators {
            let spec = &ga.doc.spec;
            self.provider_ref(ga, &spec.provider, &[ProviderType::Aws]);
            if let Some(name) = &spec.accelerator_name
                && (name.trim().is_empty() || name.chars().count() > 64)
            {
                self.push(
                    ga,
                    "spec.acceleratorName",
                    format!("`{name}` is not an accelerator name: use 1-64 characters (or leave it out to use metadata.name)"),
                );
            }
            for key in spec.tags.keys() {
                if key.starts_with("meridian.dev/") {
                    self.push(
                        ga,
                        &format!("spec.tags.{key}"),
                        "tag keys under `meridian.dev/` are reserved for meridian's ownership tags",
                    );
                }
            }
            if let Some(clients) = &spec.clients {
                self.clients(ga, "spec.clients", clients);
            }
            if spec.listeners.is_empty() {
                self.push(
                    ga,
                    "spec.listeners",
                    "an accelerator needs at least one listener",
                );
            }
            let quotas = self
                .state
                .provider(&spec.provider)
                .and_then(|p| p.doc.spec.quotas.clone());
            let listener_quota = quotas
                .as_ref()
                .and_then(|q| q.listeners_per_accelerator)
                .unwrap_or(10) as usize;
            let endpoint_quota = quotas
                .as_ref()
                .and_then(|q| q.endpoints_per_group)
                .unwrap_or(10) as usize;
            if spec.listeners.len() > listener_quota {
                self.push(
                    ga,
                    "spec.listeners",
                    format!(
                        "{} listeners; provider `{}` allows {listener_quota} per accelerator (raise it with `quotas.listenersPerAccelerator` once AWS granted more)",
                        spec.listeners.len(),
                        spec.provider
                    ),
                );
            }
            let mut listener_names: HashMap<&str, usize> = HashMap::new();
            let mut ranges: Vec<(usize, usize, u32, u32)> = Vec::new();
            for (li, listener) in spec.listeners.iter().enumerate() {
                let lp = format!("spec.listeners[{li}]");
                if !valid_name(&listener.name) {
                    self.push(ga, &format!("{lp}.name"), format!("`{}` is not a valid listener name: lowercase letters, digits and `-`, starting with a letter", listener.name));
                }
                if let Some(first) = listener_names.insert(&listener.name, li) {
                    self.push(
                        ga,
                        &format!("{lp}.name"),
                        format!(
                            "duplicate listener name `{}` (also spec.listeners[{first}])",
                            listener.name
                        ),
                    );
                }
                if listener.port_ranges.is_empty() {
                    self.push(
                        ga,
                        &format!("{lp}.portRanges"),
                        "a listener needs at least one port range",
                    );
                }
                for (ri, range) in listener.port_ranges.iter().enumerate() {
                    let rp = format!("{lp}.portRanges[{ri}]");
                    if range.from > range.to {
                        self.push(
                            ga,
                            &format!("{rp}.to"),
                            format!("`to` ({}) is below `from` ({})", range.to, range.from),
                        );
                        continue;
                    }
                    for &(oli, ori, from, to) in &ranges {
                        if range.from <= to && from <= range.to {
                            self.push(ga, &rp, format!("ports {}-{} overlap ports {from}-{to} of spec.listeners[{oli}].portRanges[{ori}]; port ranges must not overlap within an accelerator", range.from, range.to));
                        }
                    }
                    ranges.push((li, ri, range.from, range.to));
                }
                if listener.endpoint_groups.len() > 10 {
                    self.push(
                        ga,
                        &format!("{lp}.endpointGroups"),
                        format!(
                            "{} endpoint groups; a listener has at most 10",
                            listener.endpoint_groups.len()
                        ),
                    );
                }
                if let Some(clients) = &listener.clients {
                    self.clients(ga, &format!("{lp}.clients"), clients);
                }
                if listener.expected_rps == Some(0) {
                    self.push(
                        ga,
                        &format!("{lp}.expectedRps"),
                        "must be above 0 (the listener's expected peak requests or new connections per second), got 0; remove the field when unknown",
                    );
                }
                let mut group_regions: HashMap<&str, usize> = HashMap::new();
                for (gi, group) in listener.endpoint_groups.iter().enumerate() {
                    let gp = format!("{lp}.endpointGroups[{gi}]");
                    if !regions::is_aws(&group.region) {
                        self.push(
                            ga,
                            &format!("{gp}.region"),
                            format!(
                                "unknown AWS region `{}`; known regions: {}",
                                group.region,
                                regions::AWS.join(", ")
                            ),
                        );
                    }
                    if let Some(first) = group_regions.insert(&group.region, gi) {
                        self.push(ga, &format!("{gp}.region"), format!("a second endpoint group for {} in listener `{}` (the first is {lp}.endpointGroups[{first}]); Global Accelerator allows one endpoint group per region per listener", group.region, listener.name));
                    }
                    if let Some(hc) = &group.health_check {
                        let hp = format!("{gp}.healthCheck");
                        if hc.interval_seconds != 10 && hc.interval_seconds != 30 {
                            self.push(
                                ga,
                                &format!("{hp}.intervalSeconds"),
                                format!("must be 10 or 30, got {}", hc.interval_seconds),
                            );
                        }
                        if !(1..=10).contains(&hc.threshold_count) {
                            self.push(
                                ga,
                                &format!("{hp}.thresholdCount"),
                                format!("must be from 1 to 10, got {}", hc.threshold_count),
                            );
                        }
                        match (&hc.path, hc.protocol) {
                            (Some(_), GaHealthCheckProtocol::Tcp) => self.push(ga, &format!("{hp}.path"), "a path applies only to HTTP and HTTPS health checks; remove it or set `protocol: HTTP`/`HTTPS`"),
                            (Some(path), _) if !path.starts_with('/') => self.push(ga, &format!("{hp}.path"), format!("must start with `/`, got `{path}`")),
                            _ => {}
                        }
                    }
                    let mut override_ports: HashMap<u32, usize> = HashMap::new();
                    for (oi, o) in group.port_overrides.iter().enumerate() {
                        let op = format!("{gp}.portOverrides[{oi}]");
                        if !listener
                            .port_ranges
                            .iter()
                            .any(|r| (r.from..=r.to).contains(&o.listener_port))
                        {
                            self.push(
                                ga,
                                &format!("{op}.listenerPort"),
                                format!(
                                    "port {} is not in the listener's port ranges",
                                    o.listener_port
                                ),
                            );
                        }
                        if override_ports.insert(o.listener_port, oi).is_some() {
                            self.push(
                                ga,
                                &format!("{op}.listenerPort"),
                                format!("port {} is overridden twice", o.listener_port),
                            );
                        }
                    }
                    let kinds: std::collections::BTreeSet<&str> = group
                        .endpoints
                        .iter()
                        .map(|e| endpoint_kind(&e.id))
                        .collect();
                    let adjustable =
                        kinds.len() == 1 && !kinds.contains("Application Load Balancer");
                    let limit = if adjustable { endpoint_quota } else { 10 };
                    if group.endpoints.len() > limit {
                        let why = if adjustable {
                            format!(
                                "provider `{}` allows {limit} per endpoint group (raise it with `quotas.endpointsPerGroup` once AWS granted more)",
                                spec.provider
                            )
                        } else if kinds.len() > 1 {
                            "an endpoint group mixing endpoint types has at most 10 (an AWS limit that is not adjustable)".to_owned()
                        } else {
                            "an endpoint group of Application Load Balancers has at most 10 (an AWS limit that is not adjustable)".to_owned()
                        };
                        self.push(
                            ga,
                            &format!("{gp}.endpoints"),
                            format!("{} endpoints; {why}", group.endpoints.len()),
                        );
                    }
                    let mut ids: HashMap<&str, usize> = HashMap::new();
                    for (ei, endpoint) in group.endpoints.iter().enumerate() {
                        let ep = format!("{gp}.endpoints[{ei}]");
                        if let Some(first) = ids.insert(&endpoint.id, ei) {
                            self.push(
                                ga,
                                &format!("{ep}.id"),
                                format!(
                                    "endpoint `{}` is listed twice (also {gp}.endpoints[{first}])",
                                    endpoint.id
                                ),
                            );
                        }
                        let id = endpoint.id.as_str();
                        let known_shape = id.starts_with("arn:aws:elasticloadbalancing:")
                            || id.starts_with("eipalloc-")
                            || id.starts_with("i-");
                        if !known_shape {
                            self.push(ga, &format!("{ep}.id"), format!("`{id}` is not a Global Accelerator endpoint id: expected a load balancer ARN (arn:aws:elasticloadbalancing:…), an Elastic IP allocation id (eipalloc-…) or an EC2 instance id (i-…)"));
                        } else if let Some(region) = endpoint_id_region(id)
                            && region != group.region
                        {
                            self.push(ga, &format!("{ep}.id"), format!("the load balancer is in {region} but the endpoint group is in {}", group.region));
                        }
                    }
                }
            }
        }
    }

    fn health_checks(&mut self) {
        for hc in &self.state.health_checks {
            let spec = &hc.doc.spec;
            self.provider_ref(hc, &spec.provider, &[ProviderType::Gcp]);
            for (protocol, field, present) in health_check_block(spec) {
                if present && protocol != spec.check_type {
                    self.push(hc, &format!("spec.{field}"), format!("`{field}` does not match `type: {}`; use the block for the check's type", spec.check_type.as_str()));
                }
            }
            if !(1..=300).contains(&spec.check_interval_sec) {
                self.push(
                    hc,
                    "spec.checkIntervalSec",
                    format!("must be from 1 to 300, got {}", spec.check_interval_sec),
                );
            }
            if !(1..=300).contains(&spec.timeout_sec) {
                self.push(
                    hc,
                    "spec.timeoutSec",
                    format!("must be from 1 to 300, got {}", spec.timeout_sec),
                );
            } else if spec.timeout_sec > spec.check_interval_sec {
                self.push(
                    hc,
                    "spec.timeoutSec",
                    format!(
                        "must not exceed checkIntervalSec ({}), got {}",
                        spec.check_interval_sec, spec.timeout_sec
                    ),
                );
            }
            for (field, value) in [
                ("healthyThreshold", spec.healthy_threshold),
                ("unhealthyThreshold", spec.unhealthy_threshold),
            ] {
                if !(1..=10).contains(&value) {
                    self.push(
                        hc,
                        &format!("spec.{field}"),
                        format!("must be from 1 to 10, got {value}"),
                    );
                }
            }
            let blocks = [
                ("httpHealthCheck", &spec.http_health_check),
                ("httpsHealthCheck", &spec.https_health_check),
                ("http2HealthCheck", &spec.http2_health_check),
            ];
            for (field, block) in blocks {
                if let Some(path) = block.as_ref().and_then(|b| b.request_path.as_ref())
                    && !path.starts_with('/')
                {
                    self.push(
                        hc,
                        &format!("spec.{field}.requestPath"),
                        format!("must start with `/`, got `{path}`"),
                    );
                }
            }
            for (field, block) in [
                ("tcpHealthCheck", &spec.tcp_health_check),
                ("sslHealthCheck", &spec.ssl_health_check),
            ] {
                if block.as_ref().is_some_and(|b| b.request_path.is_some()) {
                    self.push(
                        hc,
                        &format!("spec.{field}.requestPath"),
                        "a request path applies only to HTTP, HTTPS and HTTP2 checks",
                    );
                }
            }
        }
    }

    fn same_provider<S, T>(
        &mut self,
        doc: &Located<S>,
        path: &str,
        target: &Located<T>,
        own: &str,
        theirs: &str,
    ) {
        if own != theirs {
            self.push(doc, path, format!("`{}` uses provider `{theirs}` but this document uses `{own}`; references must stay within one provider (one GCP project)", target.name()));
        }
    }

    fn backend_services(&mut self) {
        let state = self.state;
        for bs in &state.backend_services {
            let spec = &bs.doc.spec;
            self.provider_ref(bs, &spec.provider, &[ProviderType::Gcp]);
            if spec.health_checks.is_empty() {
                self.push(
                    bs,
                    "spec.healthChecks",
                    "a global backend service needs at least one health check",
                );
            }
            for (i, name) in spec.health_checks.iter().enumerate() {
                if state.partial {
                    break;
                }
                let path = format!("spec.healthChecks[{i}]");
                match state.health_checks.iter().find(|h| h.name() == name) {
                    None => {
                        let known: Vec<&str> =
                            state.health_checks.iter().map(|h| h.name()).collect();
                        self.push(
                            bs,
                            &path,
                            format!(
                                "no HealthCheck document named `{name}`; defined health checks: {}",
                                if known.is_empty() {
                                    "(none)".to_owned()
                                } else {
                                    known.join(", ")
                                }
                            ),
                        );
                    }
                    Some(hc) => {
                        self.same_provider(bs, &path, hc, &spec.provider, &hc.doc.spec.provider)
                    }
                }
            }
            if !(1..=86_400).contains(&spec.timeout_sec) {
                self.push(
                    bs,
                    "spec.timeoutSec",
                    format!("must be from 1 to 86400, got {}", spec.timeout_sec),
                );
            }
            if let Some(expected) = spec.expected_rps {
                if expected == 0 {
                    self.push(
                        bs,
                        "spec.expectedRps",
                        "must be above 0 (the service's expected peak requests per second), got 0; remove the field when unknown",
                    );
                } else if !spec.backends.is_empty()
                    && !spec.backends.iter().any(|b| {
                        let rate = b.max_rate.is_some()
                            || (b.max_rate_per_endpoint.is_some() && b.endpoint_count.is_some());
                        match b.balancing_mode {
                            BalancingMode::Rate => rate,
                            BalancingMode::Utilization => rate || b.capacity_rps.is_some(),
                            BalancingMode::Connection => b.capacity_rps.is_some(),
                        }
                    })
                {
                    self.push(
                        bs,
                        "spec.expectedRps",
                        "is compared with the backends' capacity in requests per second (RATE: `maxRate`, or `maxRatePerEndpoint` × `endpointCount`; UTILIZATION and CONNECTION: `capacityRps`), but no backend declares one; remove it or declare a capacity",
                    );
                }
            }
            if let Some(clients) = &spec.clients {
                self.clients(bs, "spec.clients", clients);
            }
            if let Some(algorithm) = spec.load_balancing_algorithm
                && spec.load_balancing_scheme == LoadBalancingScheme::External
            {
                self.push(
                    bs,
                    "spec.loadBalancingAlgorithm",
                    format!(
                        "`{}` is the algorithm of a service load-balancing policy, which only `loadBalancingScheme: EXTERNAL_MANAGED` services have; a classic EXTERNAL service sends each request to the closest region with capacity; remove the field or use EXTERNAL_MANAGED",
                        algorithm.as_str()
                    ),
                );
            }
            let project = state
                .provider(&spec.provider)
                .and_then(|p| p.doc.spec.project.clone());
            let mut groups: HashMap<String, usize> = HashMap::new();
            for (i, backend) in spec.backends.iter().enumerate() {
                let bp = format!("spec.backends[{i}]");
                let path = match parse_backend_group(&backend.group) {
                    Ok(group) => {
                        if let (Some(theirs), Some(ours)) = (&group.project, &project)
                            && theirs != ours
                        {
                            self.push(bs, &format!("{bp}.group"), format!("`{}` is in project `{theirs}`, but provider `{}` manages project `{ours}`; meridian manages backends in its provider's project (write the group as `{}`)", backend.group, spec.provider, group.path));
                        }
                        group.path
                    }
                    Err(message) => {
                        self.push(bs, &format!("{bp}.group"), message);
                        backend.group.clone()
                    }
                };
                if let Some(first) = groups.insert(path, i) {
                    self.push(
                        bs,
                        &format!("{bp}.group"),
                        format!(
                            "group `{}` is listed twice (also spec.backends[{first}])",
                            backend.group
                        ),
                    );
                }
                let scaler = backend.capacity_scaler;
                if !(scaler == 0.0 || (0.1..=1.0).contains(&scaler)) {
                    self.push(
                        bs,
                        &format!("{bp}.capacityScaler"),
                        format!("must be 0 (drained) or from 0.1 to 1.0, got {scaler}"),
                    );
                }
                match backend.balancing_mode {
                    BalancingMode::Rate => {
                        if backend.max_rate.is_none() && backend.max_rate_per_endpoint.is_none() {
                            self.push(
                                bs,
                                &format!("{bp}.balancingMode"),
                                "RATE needs `maxRate` or `maxRatePerEndpoint`",
                            );
                        }
                        if backend.max_rate.is_some() && backend.max_rate_per_endpoint.is_some() {
                            self.push(
                                bs,
                                &format!("{bp}.maxRatePerEndpoint"),
                                "set only one of `maxRate` and `maxRatePerEndpoint`",
                            );
                        }
                    }
                    BalancingMode::Connection => {
                        if backend.max_connections.is_none() {
                            self.push(
                                bs,
                                &format!("{bp}.balancingMode"),
                                "CONNECTION needs `maxConnections`",
                            );
                        }
                    }
                    BalancingMode::Utilization => {}
                }
                if let Some(u) = backend.max_utilization
                    && !(0.0..=1.0).contains(&u)
                {
                    self.push(
                        bs,
                        &format!("{bp}.maxUtilization"),
                        format!("must be from 0.0 to 1.0, got {u}"),
                    );
                }
                if backend.endpoint_count.is_some() && backend.max_rate_per_endpoint.is_none() {
                    self.push(
                        bs,
                        &format!("{bp}.endpointCount"),
                        "counts the endpoints that `maxRatePerEndpoint` applies to, but this backend has no `maxRatePerEndpoint`; remove it",
                    );
                }
                if backend.capacity_rps.is_some() && backend.balancing_mode == BalancingMode::Rate {
                    self.push(
                        bs,
                        &format!("{bp}.capacityRps"),
                        "a RATE backend's capacity is its `maxRate` (or `maxRatePerEndpoint` × `endpointCount`); `capacityRps` is for UTILIZATION and CONNECTION backends; remove it",
                    );
                }
                if let Some(r) = backend.max_rate_per_endpoint
                    && r <= 0.0
                {
                    self.push(
                        bs,
                        &format!("{bp}.maxRatePerEndpoint"),
                        format!("must be above 0, got {r}"),
                    );
                }
            }
        }
    }

    fn service_ref<S>(&mut self, doc: &Located<S>, path: &str, name: &str, provider: &str) {
        let state = self.state;
        if state.partial {
            return;
        }
        match state.backend_services.iter().find(|b| b.name() == name) {
            None => {
                let known: Vec<&str> = state.backend_services.iter().map(|b| b.name()).collect();
                self.push(
                    doc,
                    path,
                    format!(
                        "no BackendService document named `{name}`; defined backend services: {}",
                        if known.is_empty() {
                            "(none)".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            Some(bs) => self.same_provider(doc, path, bs, provider, &bs.doc.spec.provider),
        }
    }

    fn url_maps(&mut self) {
        for map in &self.state.url_maps {
            let spec = &map.doc.spec;
            self.provider_ref(map, &spec.provider, &[ProviderType::Gcp]);
            self.service_ref(
                map,
                "spec.defaultService",
                &spec.default_service,
                &spec.provider,
            );
            let mut matchers: HashMap<&str, usize> = HashMap::new();
            for (i, matcher) in spec.path_matchers.iter().enumerate() {
                let mp = format!("spec.pathMatchers[{i}]");
                if matchers.insert(&matcher.name, i).is_some() {
                    self.push(
                        map,
                        &format!("{mp}.name"),
                        format!("duplicate path matcher name `{}`", matcher.name),
                    );
                }
                self.service_ref(
                    map,
                    &format!("{mp}.defaultService"),
                    &matcher.default_service,
                    &spec.provider,
                );
                for (ri, rule) in matcher.path_rules.iter().enumerate() {
                    let rp = format!("{mp}.pathRules[{ri}]");
                    self.service_ref(map, &format!("{rp}.service"), &rule.service, &spec.provider);
                    if rule.paths.is_empty() {
                        self.push(
                            map,
                            &format!("{rp}.paths"),
                            "a path rule needs at least one path",
                        );
                    }
                    for (pi, path) in rule.paths.iter().enumerate() {
                        let star_inside = path.find('*').is_some_and(|at| at != path.len() - 1);
                        if !path.starts_with('/') || star_inside {
                            self.push(
                                map,
                                &format!("{rp}.paths[{pi}]"),
                                format!(
                                    "`{path}` must start with `/` and may have `*` only at the end"
                                ),
                            );
                        }
                    }
                }
            }
            for (i, rule) in spec.host_rules.iter().enumerate() {
                if !matchers.contains_key(rule.path_matcher.as_str()) {
                    let known: Vec<&str> =
                        spec.path_matchers.iter().map(|m| m.name.as_str()).collect();
                    self.push(
                        map,
                        &format!("spec.hostRules[{i}].pathMatcher"),
                        format!(
                            "no path matcher named `{}` in this URL map; defined: {}",
                            rule.path_matcher,
                            if known.is_empty() {
                                "(none)".to_owned()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                }
                if rule.hosts.is_empty() {
                    self.push(
                        map,
                        &format!("spec.hostRules[{i}].hosts"),
                        "a host rule needs at least one host",
                    );
                }
            }
        }
    }

    fn meshes(&mut self) {
        for mesh in &self.state.meshes {
            let spec = &mesh.doc.spec;
            self.provider_ref(mesh, &spec.provider, &[ProviderType::Aws]);
            if let Some(value) = mesh.doc.metadata.annotations.get(super::EXTERNAL_ID_KEY)
                && let Ok(pins) = super::external_ids("TransitGatewayMesh", mesh.name(), value)
            {
                for pin in pins {
                    let region = pin.split_once('=').map_or("", |(r, _)| r);
                    if !spec.gateways.iter().any(|g| g.region == region) {
                        self.push(
                            mesh,
                            &format!("metadata.annotations.{}", super::EXTERNAL_ID_KEY),
                            format!("pins a gateway in {region}, which the mesh does not declare: add it to spec.gateways or drop the pin"),
                        );
                    }
                }
            }
            if spec.gateways.is_empty() {
                self.push(mesh, "spec.gateways", "a mesh needs at least one gateway");
            }
            let mut regions_seen: HashMap<&str, usize> = HashMap::new();
            let mut cidrs: Vec<(String, (u32, u32), String)> = Vec::new();
            for (i, gateway) in spec.gateways.iter().enumerate() {
                let gp = format!("spec.gateways[{i}]");
                if !regions::is_aws(&gateway.region) {
                    self.push(
                        mesh,
                        &format!("{gp}.region"),
                        format!(
                            "unknown AWS region `{}`; known regions: {}",
                            gateway.region,
                            regions::AWS.join(", ")
                        ),
                    );
                }
                if let Some(first) = regions_seen.insert(&gateway.region, i) {
                    self.push(mesh, &format!("{gp}.region"), format!("a second gateway in {} (the first is spec.gateways[{first}]); a mesh has one gateway per region", gateway.region));
                }
                let asn = gateway.amazon_side_asn;
                if !((64512..=65534).contains(&asn)
                    || (4_200_000_000..=4_294_967_294).contains(&asn))
                {
                    self.push(
                        mesh,
                        &format!("{gp}.amazonSideAsn"),
                        format!(
                            "must be a private ASN, 64512-65534 or 4200000000-4294967294, got {asn}"
                        ),
                    );
                }
                for (ci, cidr) in gateway.cidrs.iter().enumerate() {
                    let cp = format!("{gp}.cidrs[{ci}]");
                    match parse_cidr(cidr) {
                        None => self.push(mesh, &cp, format!("`{cidr}` is not an IPv4 CIDR block like 10.1.0.0/16 (host bits must be zero)")),
                        Some(parsed) => {
                            if let Some((other_path, _, other)) = cidrs.iter().find(|(_, c, _)| cidrs_overlap(*c, parsed)) {
                                self.push(mesh, &cp, format!("{cidr} overlaps {other} at {other_path}; routes between regions would be ambiguous"));
                            }
                            cidrs.push((cp, parsed, cidr.clone()));
                        }
                    }
                }
            }
            if let Some(peerings) = &spec.peerings {
                let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
                for (i, peering) in peerings.iter().enumerate() {
                    let pp = format!("spec.peerings[{i}]");
                    for (field, region) in [
                        ("requester", &peering.requester),
                        ("accepter", &peering.accepter),
                    ] {
                        if !regions_seen.contains_key(region.as_str()) {
                            let known: Vec<&str> =
                                spec.gateways.iter().map(|g| g.region.as_str()).collect();
                            self.push(
                                mesh,
                                &format!("{pp}.{field}"),
                                format!(
                                    "no gateway in `{region}` in this mesh; gateway regions: {}",
                                    known.join(", ")
                                ),
                            );
                        }
                    }
                    if peering.requester == peering.accepter {
                        self.push(
                            mesh,
                            &format!("{pp}.accepter"),
                            "a gateway cannot peer with itself",
                        );
                    }
                    let mut pair = [peering.requester.clone(), peering.accepter.clone()];
                    pair.sort();
                    let [a, b] = pair;
                    if let Some(first) = pairs.insert((a, b), i) {
                        self.push(
                            mesh,
                            &pp,
                            format!(
                                "{} and {} are already peered by spec.peerings[{first}]",
                                peering.requester, peering.accepter
                            ),
                        );
                    }
                }
            }
        }
    }

    /// A selector selects something and names documents that exist.
    fn selector<S>(&mut self, doc: &Located<S>, selector: &Selector) {
        let state = self.state;
        if selector.kind.is_none() && selector.names.is_empty() && selector.match_labels.is_empty()
        {
            self.push(
                doc,
                "spec.selector",
                "a selector needs `kind`, `names` or `matchLabels`",
            );
        }
        for (i, name) in selector.names.iter().enumerate() {
            if state.partial {
                break;
            }
            let in_ga = state.accelerators.iter().any(|a| a.name() == name);
            let in_bs = state.backend_services.iter().any(|b| b.name() == name);
            let found = match selector.kind {
                Some(TrafficKind::GlobalAccelerator) => in_ga,
                Some(TrafficKind::BackendService) => in_bs,
                None => in_ga || in_bs,
            };
            if !found {
                let kind = selector
                    .kind
                    .map_or("GlobalAccelerator or BackendService".to_owned(), |k| {
                        format!("{k:?}")
                    });
                self.push(
                    doc,
                    &format!("spec.selector.names[{i}]"),
                    format!("no {kind} document named `{name}`"),
                );
            }
        }
    }

    fn client_populations(&mut self) {
        let state = self.state;
        for population in &state.client_populations {
            self.selector(population, &population.doc.spec.selector);
            self.clients(population, "spec.clients", &population.doc.spec.clients);
        }
    }

    fn traffic_policies(&mut self) {
        let state = self.state;
        for policy in &state.traffic_policies {
            let spec = &policy.doc.spec;
            self.selector(policy, &spec.selector);
            if spec.bake_seconds > 86_400 {
                self.push(
                    policy,
                    "spec.bakeSeconds",
                    format!("must be at most 86400 (a day), got {}", spec.bake_seconds),
                );
            }
            if spec.min_serving_regions == 0 {
                self.push(policy, "spec.minServingRegions", "must be at least 1: traffic never drops to zero serving regions because of meridian");
            }
            if let Some(gate) = &spec.health_gate {
                if let Some(fraction) = gate.min_healthy_fraction
                    && !(0.0..=1.0).contains(&fraction)
                {
                    self.push(
                        policy,
                        "spec.healthGate.minHealthyFraction",
                        format!("must be from 0.0 to 1.0, got {fraction}"),
                    );
                }
                if gate.min_healthy_fraction.is_none() && gate.prometheus.is_none() {
                    self.push(
                        policy,
                        "spec.healthGate",
                        "a health gate needs `minHealthyFraction`, `prometheus`, or both",
                    );
                }
                if let Some(prometheus) = &gate.prometheus {
                    if !(prometheus.url.starts_with("http://")
                        || prometheus.url.starts_with("https://"))
                    {
                        self.push(
                            policy,
                            "spec.healthGate.prometheus.url",
                            format!("`{}` is not an http:// or https:// URL", prometheus.url),
                        );
                    }
                    if prometheus.query.trim().is_empty() {
                        self.push(
                            policy,
                            "spec.healthGate.prometheus.query",
                            "must not be empty",
                        );
                    }
                    if prometheus.max_value.is_none() && prometheus.min_value.is_none() {
                        self.push(
                            policy,
                            "spec.healthGate.prometheus",
                            "needs `maxValue`, `minValue`, or both: the threshold the query's samples must stay within",
                        );
                    }
                }
            }
            if spec.flap_hold_seconds > 86_400 {
                self.push(
                    policy,
                    "spec.flapHoldSeconds",
                    format!(
                        "must be at most 86400 (a day), got {}",
                        spec.flap_hold_seconds
                    ),
                );
            }
            for (i, window) in spec.deny_windows.iter().enumerate() {
                let wp = format!("spec.denyWindows[{i}]");
                if !valid_cron(&window.cron) {
                    self.push(policy, &format!("{wp}.cron"), format!("`{}` is not a five-field cron expression (minute hour day-of-month month day-of-week, e.g. \"0 16 * * FRI\")", window.cron));
                }
                if !(1..=10_080).contains(&window.duration_minutes) {
                    self.push(
                        policy,
                        &format!("{wp}.durationMinutes"),
                        format!(
                            "must be from 1 to 10080 (a week), got {}",
                            window.duration_minutes
                        ),
                    );
                }
                let tz = &window.time_zone;
                let tz_ok = tz == "UTC"
                    || (tz.contains('/')
                        && tz.chars().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')
                        }));
                if !tz_ok {
                    self.push(
                        policy,
                        &format!("{wp}.timeZone"),
                        format!("`{tz}` is not an IANA time zone like UTC or Europe/Berlin"),
                    );
                }
            }
        }
    }

    fn residency_policies(&mut self) {
        for policy in &self.state.residency_policies {
            let spec = &policy.doc.spec;
            if spec.data_classification.is_empty() {
                self.push(
                    policy,
                    "spec.dataClassification",
                    "list at least one data classification, e.g. [pii]",
                );
            }
            if spec.allowed_regions.is_empty() && spec.blocked_regions.is_empty() {
                self.push(
                    policy,
                    "spec.allowedRegions",
                    "a residency policy needs `allowedRegions`, `blockedRegions` or both",
                );
            }
            for (field, globs) in [
                ("allowedRegions", &spec.allowed_regions),
                ("blockedRegions", &spec.blocked_regions),
                ("clientRegions", &spec.client_regions),
            ] {
                for (i, glob) in globs.iter().enumerate() {
                    if glob.is_empty()
                        || !glob.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*'
                        })
                    {
                        self.push(policy, &format!("spec.{field}[{i}]"), format!("`{glob}` is not a region glob: lowercase region names with `*` wildcards, e.g. eu-central-1 or \"us-*\""));
                    }
                }
            }
        }
    }
}

/// The Global Accelerator endpoint type of an endpoint id, as the service
/// quotas name them.
fn endpoint_kind(id: &str) -> &'static str {
    if id.contains(":loadbalancer/app/") {
        "Application Load Balancer"
    } else if id.contains(":loadbalancer/net/") {
        "Network Load Balancer"
    } else if id.starts_with("i-") {
        "EC2 instance"
    } else if id.starts_with("eipalloc-") {
        "Elastic IP address"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.1.0.0/16"), Some((0x0a01_0000, 16)));
        assert_eq!(parse_cidr("10.1.0.1/16"), None);
        assert_eq!(parse_cidr("10.1.0.0/33"), None);
        assert!(cidrs_overlap(
            parse_cidr("10.0.0.0/8").expect("a"),
            parse_cidr("10.2.0.0/16").expect("b")
        ));
        assert!(!cidrs_overlap(
            parse_cidr("10.1.0.0/16").expect("a"),
            parse_cidr("10.2.0.0/16").expect("b")
        ));
    }

    #[test]
    fn crons() {
        assert!(valid_cron("0 16 * * FRI"));
        assert!(valid_cron("*/15 0-6 1,15 JAN-MAR 1-5"));
        assert!(!valid_cron("0 16 * *"));
        assert!(!valid_cron("61 16 * * *"));
        assert!(!valid_cron("0 16 * * FUNDAY"));
    }
}
