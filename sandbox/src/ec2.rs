//! The EC2 Query protocol's Transit Gateway subset over the simulated cloud.
//!
//! A local emulator, not a cloud: it serves `POST /` with a
//! `application/x-www-form-urlencoded` body (`Action=<Op>&Version=2016-11-15`
//! and the operation's parameters in EC2's list encoding, `Filter.1.Name`,
//! `Filter.1.Value.1`, `TagSpecification.1.Tag.1.Key`, …), answers in EC2's
//! XML (`<{Op}Response>` with lowerCamel elements and `<item>` list members)
//! and errors as `<Response><Errors><Error>…`, so that the real `aws`
//! provider (`aws-sdk-ec2`), boto3 and the AWS CLI run against it unchanged.
//!
//! EC2 is regional but the SDKs send every region to the one endpoint URL,
//! so a request's region is the one its SigV4 credential scope names
//! (`us-east-1` without one). Gateways, peerings (seen from both of their
//! regions) and route tables are visible only in their own region, as each
//! region's endpoint sees only its own.
//!
//! It translates the protocol and scopes by region; everything else (ids,
//! states, quotas, ordering rules, fault injection, call counting) is the
//! simulated cloud's. It must never keep state of its own, never answer for
//! an operation or parameter it does not model (those are refused, never
//! ignored), and, since it checks no signature or credential, never be
//! exposed beyond loopback.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meridian_provider::regions;
use meridian_sim::cloud::{ACCOUNT_ID, SimCloud, SimError};
use meridian_sim::world::{Peering, Route, TransitGateway, World};

/// The EC2 API version whose shapes this module speaks.
pub const API_VERSION: &str = "2016-11-15";
/// The namespace of every EC2 response document.
pub const XMLNS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
/// The region of a request whose credential scope names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The actions served; any other answers `InvalidAction`.
pub const ACTIONS: &[&str] = &[
    "AcceptTransitGatewayPeeringAttachment",
    "CreateTransitGateway",
    "CreateTransitGatewayPeeringAttachment",
    "CreateTransitGatewayRoute",
    "DeleteTransitGateway",
    "DeleteTransitGatewayPeeringAttachment",
    "DeleteTransitGatewayRoute",
    "DescribeRegions",
    "DescribeTransitGatewayPeeringAttachments",
    "DescribeTransitGateways",
    "ModifyTransitGateway",
    "ReplaceTransitGatewayRoute",
    "SearchTransitGatewayRoutes",
];

/// Tags per resource, as EC2's.
const MAX_TAGS: usize = 50;
/// The Amazon side ASN of a gateway created without one.
const DEFAULT_ASN: u32 = 64512;
/// `SearchTransitGatewayRoutes`' page without `MaxResults`.
const DEFAULT_ROUTE_PAGE: usize = 1000;
/// A gateway is `available` as soon as it exists: the simulated cloud
/// models no `pending` phase for gateways.
const GATEWAY_AVAILABLE: &str = "available";

/// Regions launched after March 2019, which an account must opt in to. The
/// sandbox's account has opted in to those its world uses (`opted-in`);
/// the others are `not-opted-in`, listed only with `AllRegions` or by name.
const OPT_IN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
];

/// Gateway options the simulated cloud does not model, at the values every
/// gateway reports (EC2's defaults). A request may name them only at these.
const GATEWAY_DEFAULTS: &[(&str, &str)] = &[
    ("AutoAcceptSharedAttachments", "disable"),
    ("DefaultRouteTableAssociation", "enable"),
    ("DefaultRouteTablePropagation", "enable"),
    ("VpnEcmpSupport", "enable"),
    ("DnsSupport", "enable"),
    ("SecurityGroupReferencingSupport", "disable"),
    ("MulticastSupport", "disable"),
];

/// The filters each describe serves; `tag:` stands for every `tag:<key>`.
const GATEWAY_FILTERS: &[&str] = &[
    "options.amazon-side-asn",
    "options.association-default-route-table-id",
    "options.auto-accept-shared-attachments",
    "options.default-route-table-association",
    "options.default-route-table-propagation",
    "options.dns-support",
    "options.propagation-default-route-table-id",
    "options.vpn-ecmp-support",
    "owner-id",
    "state",
    "tag-key",
    "tag:",
    "transit-gateway-id",
];
const PEERING_FILTERS: &[&str] = &[
    "local-owner-id",
    "remote-owner-id",
    "state",
    "tag-key",
    "tag:",
    "transit-gateway-attachment-id",
    "transit-gateway-id",
];
const ROUTE_FILTERS: &[&str] = &[
    "attachment.resource-id",
    "attachment.resource-type",
    "attachment.transit-gateway-attachment-id",
    "prefix-list-id",
    "route-search.exact-match",
    "route-search.longest-prefix-match",
    "route-search.subnet-of-match",
    "route-search.supernet-of-match",
    "state",
    "type",
];
const REGION_FILTERS: &[&str] = &["endpoint", "opt-in-status", "region-name"];

// ----- errors ----------------------------------------------------------------

/// An error in EC2's XML error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    /// HTTP status.
    pub status: StatusCode,
    /// EC2 error code, e.g. `InvalidTransitGatewayID.NotFound`.
    pub code: String,
    /// Message for humans.
    pub message: String,
}

impl Ec2Error {
    fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    fn client(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::client("InvalidParameterValue", message)
    }

    fn missing(parameter: &str) -> Self {
        Self::client(
            "MissingParameter",
            format!("The request must contain the parameter {parameter}"),
        )
    }

    fn gateway_not_found(id: &str) -> Self {
        Self::client(
            "InvalidTransitGatewayID.NotFound",
            format!("The transitGateway ID '{id}' does not exist"),
        )
    }

    fn attachment_not_found(id: &str) -> Self {
        Self::client(
            "InvalidTransitGatewayAttachmentID.NotFound",
            format!("The transitGatewayAttachment ID '{id}' does not exist"),
        )
    }

    fn route_table_not_found(id: &str) -> Self {
        Self::client(
            "InvalidRouteTableID.NotFound",
            format!("The transitGatewayRouteTable ID '{id}' does not exist"),
        )
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// The XML error document, with `request_id`.
    pub fn body(&self, request_id: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            escape(&self.code),
            escape(&self.message),
            escape(request_id)
        )
    }

    fn into_response(self, request_id: &str) -> Response {
        xml_response(self.status, self.body(request_id))
    }
}

impl From<SimError> for Ec2Error {
    fn from(error: SimError) -> Self {
        match error {
            SimError::Throttling { .. } | SimError::RateLimited { .. } => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "RequestLimitExceeded",
                format!("Request limit exceeded. ({error})"),
            ),
            SimError::Internal { .. } | SimError::Store(_) => {
                Self::internal(format!("An internal error has occurred. ({error})"))
            }
            // A permanent failure, as the simulated cloud means it: a client
            // error no retry fixes.
            SimError::Injected { .. } => Self::client(error.code().to_owned(), error.to_string()),
            SimError::Api { code, message, .. } => {
                let code = match code {
                    "InvalidNextTokenException" => "InvalidPaginationToken",
                    other => other,
                };
                Self::client(code, message)
            }
        }
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    response
}

// ----- the request -----------------------------------------------------------

/// Whether a `POST /` without `X-Amz-Target` is a Query request: a form
/// body, by its content type or by an `Action` field.
pub fn is_query_request(headers: &HeaderMap, body: &[u8]) -> bool {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            t.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    form || body.starts_with(b"Action=") || body.windows(8).any(|w| w == b"&Action=")
}

/// The region a SigV4 `Authorization` header's credential scope names
/// (`Credential=AKID/20260101/us-east-1/ec2/aws4_request, …`), if any.
pub fn credential_region(headers: &HeaderMap) -> Option<&str> {
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (_, credential) = authorization.split_once("Credential=")?;
    let scope = credential.split([',', ' ']).next()?;
    scope.split('/').nth(2).filter(|region| !region.is_empty())
}

/// The region a request is for: its credential scope's, else
/// [`DEFAULT_REGION`]; an unknown AWS region is refused as EC2 refuses a
/// signature scoped to one.
pub fn request_region(headers: &HeaderMap) -> Result<String, Ec2Error> {
    let region = credential_region(headers).unwrap_or(DEFAULT_REGION);
    if !regions::is_aws(region) {
        return Err(Ec2Error::new(
            StatusCode::UNAUTHORIZED,
            "AuthFailure",
            format!("Credential should be scoped to a valid region, not '{region}'"),
        ));
    }
    Ok(region.to_owned())
}

fn percent_decode(text: &str) -> Result<String, Ec2Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| {
                        Ec2Error::invalid(format!("the request body has a bad %-escape in {text}"))
                    })?;
                out.push(byte);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Ec2Error::invalid(format!("the request body field {text} is not UTF-8")))
}

/// One `Filter.N`: a name and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `Filter.N.Name`.
    pub name: String,
    /// `Filter.N.Value.M`, in index order.
    pub values: Vec<String>,
}

/// The decoded parameters of one request, consumed as they are read, so
/// that whatever is left when an operation has read its input was not
/// recognised and is refused (`UnknownParameter`), never ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Decodes a form body (`a=1&b=x+y&c=%2F`). A parameter given twice is
    /// refused: which one EC2 would take is not defined.
    pub fn decode(body: &[u8]) -> Result<Self, Ec2Error> {
        let text = std::str::from_utf8(body)
            .map_err(|_| Ec2Error::invalid("the request body is not UTF-8"))?;
        let mut params = BTreeMap::new();
        for pair in text.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            let value = percent_decode(value)?;
            if params.insert(key.clone(), value).is_some() {
                return Err(Ec2Error::invalid(format!(
                    "the parameter {key} is given more than once"
                )));
            }
        }
        Ok(Self(params))
    }

    /// Takes one parameter.
    pub fn take(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    fn required(&mut self, key: &str) -> Result<String, Ec2Error> {
        self.take(key)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| Ec2Error::missing(key))
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, Ec2Error> {
        match self.take(key).as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(Ec2Error::invalid(format!(
                "Value ({other}) for parameter {key} is invalid. Expected: 'true' or 'false'"
            ))),
        }
    }

    fn integer(&mut self, key: &str) -> Result<Option<i64>, Ec2Error> {
        self.take(key)
            .map(|value| {
                value.parse().map_err(|_| {
                    Ec2Error::invalid(format!(
                        "Value ({value}) for parameter {key} is invalid. Expected an integer"
                    ))
                })
            })
            .transpose()
    }

    /// The indices `N` of the `prefix.N` and `prefix.N.…` parameters, in
    /// numeric order (so `.10` comes after `.2`).
    fn indices(&self, prefix: &str) -> Vec<u32> {
        let start = format!("{prefix}.");
        let mut found = BTreeSet::new();
        for key in self.0.range(start.clone()..).map(|(key, _)| key) {
            let Some(rest) = key.strip_prefix(&start) else {
                break;
            };
            let head = rest.split('.').next().unwrap_or(rest);
            if let Ok(n) = head.parse::<u32>()
                && n >= 1
                && head.bytes().all(|b| b.is_ascii_digit())
            {
                found.insert(n);
            }
        }
        found.into_iter().collect()
    }

    /// A list of strings, `prefix.1`, `prefix.2`, …
    pub fn strings(&mut self, prefix: &str) -> Vec<String> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| self.take(&format!("{prefix}.{n}")))
            .collect()
    }

    /// `Filter.N.Name` / `Filter.N.Value.M`, each name one of `served`
    /// (where `tag:` admits every `tag:<key>`).
    pub fn filters(&mut self, served: &[&str]) -> Result<Vec<Filter>, Ec2Error> {
        let mut filters = Vec::new();
        for n in self.indices("Filter") {
            let name = self.required(&format!("Filter.{n}.Name"))?;
            let values = self.strings(&format!("Filter.{n}.Value"));
            let known = served.contains(&name.as_str())
                || (served.contains(&"tag:") && name.len() > 4 && name.starts_with("tag:"));
            if !known {
                return Err(Ec2Error::invalid(format!(
                    "The filter '{name}' is invalid (this action serves {})",
                    served.join(", ")
                )));
            }
            if values.is_empty() {
                return Err(Ec2Error::invalid(format!(
                    "The filter '{name}' has no values"
                )));
            }
            filters.push(Filter { name, values });
        }
        Ok(filters)
    }

    /// The tags of every `TagSpecification.N`, each of which must be for
    /// `resource_type`.
    pub fn tags(&mut self, resource_type: &str) -> Result<BTreeMap<String, String>, Ec2Error> {
        let mut tags = BTreeMap::new();
        for n in self.indices("TagSpecification") {
            let spec = format!("TagSpecification.{n}");
            let kind = self.required(&format!("{spec}.ResourceType"))?;
            if kind != resource_type {
                return Err(Ec2Error::invalid(format!(
                    "{spec}.ResourceType must be {resource_type} for this action, not {kind}"
                )));
            }
            for m in self.indices(&format!("{spec}.Tag")) {
                let key = self.required(&format!("{spec}.Tag.{m}.Key"))?;
                let value = self
                    .take(&format!("{spec}.Tag.{m}.Value"))
                    .unwrap_or_default();
                if key.chars().count() > 128 || value.chars().count() > 256 {
                    return Err(Ec2Error::invalid(format!(
                        "tag {key}: keys are 1-128 characters and values at most 256"
                    )));
                }
                if key.to_ascii_lowercase().starts_with("aws:") {
                    return Err(Ec2Error::invalid(format!(
                        "tag {key}: keys starting with aws: are reserved for AWS use"
                    )));
                }
                if tags.insert(key.clone(), value).is_some() {
                    return Err(Ec2Error::invalid(format!("tag {key} is given twice")));
                }
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(Ec2Error::client(
                "TagLimitExceeded",
                format!("{} tags exceed the limit of {MAX_TAGS}", tags.len()),
            ));
        }
        Ok(tags)
    }

    /// `prefix.Name=value` for each of `defaults`, accepted only at its
    /// value there: an option the simulated cloud does not model is never
    /// silently dropped.
    fn defaults_only(&mut self, prefix: &str, defaults: &[(&str, &str)]) -> Result<(), Ec2Error> {
        for (name, default) in defaults {
            let key = format!("{prefix}.{name}");
            if let Some(value) = self.take(&key)
                && value != *default
            {
                return Err(Ec2Error::invalid(format!(
                    "{key}={value}: the sandbox models {key} only at {default}"
                )));
            }
        }
        Ok(())
    }

    /// `MaxResults` (5-1000, as EC2's Transit Gateway describes).
    fn page_size(&mut self) -> Result<Option<usize>, Ec2Error> {
        match self.integer("MaxResults")? {
            None => Ok(None),
            Some(n @ 5..=1000) => Ok(usize::try_from(n).ok()),
            Some(n) => Err(Ec2Error::invalid(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Parameter must be between 5 and 1000"
            ))),
        }
    }

    /// Refuses whatever was not read.
    pub fn finish(self) -> Result<(), Ec2Error> {
        match self.0.into_keys().next() {
            None => Ok(()),
            Some(key) => Err(Ec2Error::client(
                "UnknownParameter",
                format!("The parameter {key} is not recognized"),
            )),
        }
    }
}

/// The end of reading an operation's input: nothing left over, and a dry
/// run stops here with EC2's answer for one that would have succeeded.
fn ready(params: Params, dry_run: bool) -> Result<(), Ec2Error> {
    params.finish()?;
    if dry_run {
        return Err(Ec2Error::new(
            StatusCode::PRECONDITION_FAILED,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    Ok(())
}

// ----- matching --------------------------------------------------------------

/// EC2's filter-value wildcards: `*` any run, `?` one character, `\`
/// escapes the next.
fn glob_matches(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Char(char),
        One,
        Any,
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            '?' => Token::One,
            '*' => Token::Any,
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::One) => (p, t) = (p + 1, t + 1),
            Some(Token::Char(c)) if *c == text[t] => (p, t) = (p + 1, t + 1),
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    star = Some((star_p, star_t + 1));
                    (p, t) = (star_p + 1, star_t + 1);
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|token| *token == Token::Any)
}

/// Whether an object passes every filter: each filter matches when any of
/// its values matches any of the object's values for that name.
fn passes(filters: &[Filter], values: impl Fn(&str) -> Vec<String>) -> bool {
    filters.iter().all(|filter| {
        let have = values(&filter.name);
        filter
            .values
            .iter()
            .any(|want| have.iter().any(|value| glob_matches(want, value)))
    })
}

fn tag_values(tags: &BTreeMap<String, String>, name: &str) -> Option<Vec<String>> {
    if name == "tag-key" {
        return Some(tags.keys().cloned().collect());
    }
    let key = name.strip_prefix("tag:")?;
    Some(tags.get(key).cloned().into_iter().collect())
}

/// An IPv4 or IPv6 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    v6: bool,
    bits: u128,
    len: u32,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (address, len) = text.split_once('/')?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u32 = len.parse().ok()?;
        match address.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) if len <= 32 => Some(Self {
                v6: false,
                bits: u128::from(u32::from(v4)),
                len,
            }),
            IpAddr::V6(v6) if len <= 128 => Some(Self {
                v6: true,
                bits: u128::from(v6),
                len,
            }),
            _ => None,
        }
    }

    fn network(&self, len: u32) -> u128 {
        let width = if self.v6 { 128 } else { 32 };
        if len == 0 {
            0
        } else {
            self.bits >> (width - len)
        }
    }

    /// Whether `other` lies within this block (equal blocks included).
    fn contains(&self, other: &Cidr) -> bool {
        self.v6 == other.v6
            && self.len <= other.len
            && self.network(self.len) == other.network(self.len)
    }
}

fn cidr(parameter: &str, text: &str) -> Result<Cidr, Ec2Error> {
    Cidr::parse(text).ok_or_else(|| {
        Ec2Error::invalid(format!(
            "Value ({text}) for parameter {parameter} is invalid. This is not a valid CIDR block."
        ))
    })
}

// ----- the response ----------------------------------------------------------

/// Escapes text for an XML element or attribute. Characters XML 1.0 cannot
/// carry at all (C0 controls other than tab and newline) become U+FFFD; a
/// carriage return is kept as a reference so parsers do not fold it.
pub fn escape(text: &str) -> Cow<'_, str> {
    let needs = |c: char| {
        matches!(c, '&' | '<' | '>' | '"' | '\'' | '\r') || (c < ' ' && c != '\t' && c != '\n')
    };
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c if c < ' ' && c != '\t' && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// An EC2 response document, written as it is built.
#[derive(Debug)]
pub struct Xml {
    root: String,
    out: String,
}

impl Xml {
    /// Starts `<{action}Response>` with its `requestId`.
    pub fn response(action: &str, request_id: &str) -> Self {
        let root = format!("{action}Response");
        let mut xml = Self {
            out: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{XMLNS}\">"),
            root,
        };
        xml.leaf("requestId", request_id);
        xml
    }

    /// Opens `<name>`.
    pub fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Closes `</name>`.
    pub fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// `<name>text</name>`, the text escaped.
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        self.out.push_str(&escape(text));
        self.close(name);
    }

    /// Closes the root and returns the document.
    pub fn finish(mut self) -> String {
        let root = std::mem::take(&mut self.root);
        self.close(&root);
        self.out
    }
}

fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

fn lower_camel(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn tags_xml(x: &mut Xml, tags: &BTreeMap<String, String>) {
    x.open("tagSet");
    for (key, value) in tags {
        x.open("item");
        x.leaf("key", key);
        x.leaf("value", value);
        x.close("item");
    }
    x.close("tagSet");
}

/// A gateway as `<element>` (`item` in a list, `transitGateway` alone).
fn gateway_xml(x: &mut Xml, element: &str, tgw: &TransitGateway, state: &str) {
    x.open(element);
    x.leaf("transitGatewayId", &tgw.id);
    x.leaf(
        "transitGatewayArn",
        &format!(
            "arn:{}:ec2:{}:{ACCOUNT_ID}:transit-gateway/{}",
            partition(&tgw.region),
            tgw.region,
            tgw.id
        ),
    );
    x.leaf("state", state);
    x.leaf("ownerId", ACCOUNT_ID);
    x.leaf("description", &tgw.description);
    x.open("options");
    x.leaf("amazonSideAsn", &tgw.amazon_side_asn.to_string());
    x.leaf("associationDefaultRouteTableId", &tgw.route_table_id);
    x.leaf("propagationDefaultRouteTableId", &tgw.route_table_id);
    for (name, value) in GATEWAY_DEFAULTS {
        x.leaf(&lower_camel(name), value);
    }
    x.close("options");
    tags_xml(x, &tgw.tags);
    x.close(element);
}

fn gateway_values(tgw: &TransitGateway, name: &str) -> Vec<String> {
    if let Some(values) = tag_values(&tgw.tags, name) {
        return values;
    }
    let value = match name {
        "transit-gateway-id" => tgw.id.clone(),
        "state" => GATEWAY_AVAILABLE.to_owned(),
        "owner-id" => ACCOUNT_ID.to_owned(),
        "options.amazon-side-asn" => tgw.amazon_side_asn.to_string(),
        "options.association-default-route-table-id"
        | "options.propagation-default-route-table-id" => tgw.route_table_id.clone(),
        "options.auto-accept-shared-attachments" => "disable".to_owned(),
        "options.default-route-table-association"
        | "options.default-route-table-propagation"
        | "options.dns-support"
        | "options.vpn-ecmp-support" => "enable".to_owned(),
        _ => return Vec::new(),
    };
    vec![value]
}

fn status_message(state: &str) -> &str {
    match state {
        "pendingAcceptance" => "Pending Acceptance",
        "pending" => "Pending",
        "available" => "Available",
        "deleting" => "Deleting",
        other => other,
    }
}

/// A peering attachment as `<element>`.
fn peering_xml(x: &mut Xml, element: &str, peering: &Peering, state: &str) {
    x.open(element);
    x.leaf("transitGatewayAttachmentId", &peering.id);
    for (side, tgw, region) in [
        (
            "requesterTgwInfo",
            &peering.requester_tgw,
            &peering.requester_region,
        ),
        (
            "accepterTgwInfo",
            &peering.accepter_tgw,
            &peering.accepter_region,
        ),
    ] {
        x.open(side);
        x.leaf("transitGatewayId", tgw);
        x.leaf("ownerId", ACCOUNT_ID);
        x.leaf("region", region);
        x.close(side);
    }
    x.open("options");
    x.leaf("dynamicRouting", "disable");
    x.close("options");
    x.open("status");
    x.leaf("code", state);
    x.leaf("message", status_message(state));
    x.close("status");
    x.leaf("state", state);
    tags_xml(x, &peering.tags);
    x.close(element);
}

fn peering_values(peering: &Peering, state: &str, name: &str) -> Vec<String> {
    if let Some(values) = tag_values(&peering.tags, name) {
        return values;
    }
    match name {
        "transit-gateway-attachment-id" => vec![peering.id.clone()],
        "local-owner-id" | "remote-owner-id" => vec![ACCOUNT_ID.to_owned()],
        "state" => vec![state.to_owned()],
        "transit-gateway-id" => vec![peering.requester_tgw.clone(), peering.accepter_tgw.clone()],
        _ => Vec::new(),
    }
}

/// The gateway at the other end of a peering, seen from `gateway`.
fn peer_of<'w>(world: &'w World, attachment: &str, gateway: &str) -> Option<&'w str> {
    world.peerings.get(attachment).map(|p| {
        if p.requester_tgw == gateway {
            p.accepter_tgw.as_str()
        } else {
            p.requester_tgw.as_str()
        }
    })
}

/// A static route of `gateway`'s route table as `<element>`.
fn route_xml(x: &mut Xml, element: &str, route: &Route, world: &World, gateway: &str, state: &str) {
    x.open(element);
    x.leaf("destinationCidrBlock", &route.cidr);
    x.open("transitGatewayAttachments");
    x.open("item");
    if let Some(peer) = peer_of(world, &route.attachment_id, gateway) {
        x.leaf("resourceId", peer);
    }
    x.leaf("transitGatewayAttachmentId", &route.attachment_id);
    x.leaf("resourceType", "peering");
    x.close("item");
    x.close("transitGatewayAttachments");
    x.leaf("type", "static");
    x.leaf("state", state);
    x.close(element);
}

// ----- the world, as one region sees it --------------------------------------

fn snapshot(cloud: &SimCloud) -> Result<std::sync::Arc<World>, Ec2Error> {
    cloud
        .store()
        .read()
        .map_err(|e| Ec2Error::from(SimError::from(e)))
}

fn gateway_in<'w>(
    world: &'w World,
    region: &str,
    id: &str,
) -> Result<&'w TransitGateway, Ec2Error> {
    world
        .transit_gateways
        .get(id)
        .filter(|tgw| tgw.region == region)
        .ok_or_else(|| Ec2Error::gateway_not_found(id))
}

/// A peering as `region` sees it: from either of its two regions.
fn peering_in<'w>(world: &'w World, region: &str, id: &str) -> Result<&'w Peering, Ec2Error> {
    world
        .peerings
        .get(id)
        .filter(|p| p.requester_region == region || p.accepter_region == region)
        .ok_or_else(|| Ec2Error::attachment_not_found(id))
}

/// The gateway whose default route table `route_table` is, in `region`.
fn route_table_in<'w>(
    world: &'w World,
    region: &str,
    route_table: &str,
) -> Result<&'w TransitGateway, Ec2Error> {
    world
        .transit_gateways
        .values()
        .find(|tgw| tgw.route_table_id == route_table && tgw.region == region)
        .ok_or_else(|| Ec2Error::route_table_not_found(route_table))
}

// ----- operations ------------------------------------------------------------

/// Serves one action in `region`, writing its response into a document
/// with `request_id`.
pub async fn dispatch(
    cloud: &SimCloud,
    region: &str,
    action: &str,
    mut params: Params,
    request_id: &str,
) -> Result<String, Ec2Error> {
    // Calls in this region draw from this region's rate-limit buckets;
    // the writes they make are recorded under this request's id.
    let regional = cloud.in_region(region).with_request_id(request_id);
    let cloud = &regional;
    if !ACTIONS.contains(&action) {
        return Err(Ec2Error::client(
            "InvalidAction",
            format!(
                "The action {action} is not valid for this web service: meridian's sandbox serves only the Transit Gateway subset of EC2 ({})",
                ACTIONS.join(", ")
            ),
        ));
    }
    let dry_run = params.boolean("DryRun")?.unwrap_or(false);
    let mut x = Xml::response(action, request_id);
    match action {
        "DescribeRegions" => describe_regions(cloud, region, params, dry_run, &mut x).await?,
        "CreateTransitGateway" => {
            create_transit_gateway(cloud, region, params, dry_run, &mut x).await?
        }
        "DescribeTransitGateways" => {
            describe_transit_gateways(cloud, region, params, dry_run, &mut x).await?
        }
        "ModifyTransitGateway" => {
            modify_transit_gateway(cloud, region, params, dry_run, &mut x).await?
        }
        "DeleteTransitGateway" => {
            delete_transit_gateway(cloud, region, params, dry_run, &mut x).await?
        }
        "CreateTransitGatewayPeeringAttachment" => {
            create_peering(cloud, region, params, dry_run, &mut x).await?
        }
        "AcceptTransitGatewayPeeringAttachment" => {
            accept_peering(cloud, region, params, dry_run, &mut x).await?
        }
        "DescribeTransitGatewayPeeringAttachments" => {
            describe_peerings(cloud, region, params, dry_run, &mut x).await?
        }
        "DeleteTransitGatewayPeeringAttachment" => {
            delete_peering(cloud, region, params, dry_run, &mut x).await?
        }
        "CreateTransitGatewayRoute" => {
            put_route(cloud, region, params, dry_run, false, &mut x).await?
        }
        "ReplaceTransitGatewayRoute" => {
            put_route(cloud, region, params, dry_run, true, &mut x).await?
        }
        "DeleteTransitGatewayRoute" => delete_route(cloud, region, params, dry_run, &mut x).await?,
        "SearchTransitGatewayRoutes" => {
            search_routes(cloud, region, params, dry_run, &mut x).await?
        }
        other => {
            return Err(Ec2Error::internal(format!(
                "{other} is listed but not served"
            )));
        }
    }
    Ok(x.finish())
}

async fn describe_regions(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let names = params.strings("RegionName");
    // As in a new AWS account, opt-in Regions are not enabled, except those
    // the simulated world already uses (as if opted in). `AllRegions`
    // lists them too, as `not-opted-in`.
    let all = params.boolean("AllRegions")?.unwrap_or(false);
    let used = cloud.transit_gateway_regions()?;
    let filters = params.filters(REGION_FILTERS)?;
    ready(params, dry_run)?;
    let home = partition(region);
    if let Some(unknown) = names
        .iter()
        .find(|name| !regions::is_aws(name) || partition(name) != home)
    {
        return Err(Ec2Error::invalid(format!("Invalid region: {unknown}")));
    }
    cloud
        .count_call("DescribeRegions", false, |_| Ok(()))
        .await?;
    x.open("regionInfo");
    for name in regions::AWS
        .iter()
        .filter(|name| partition(name) == home)
        .filter(|name| names.is_empty() || names.iter().any(|n| n == *name))
    {
        let suffix = if home == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let endpoint = format!("ec2.{name}.{suffix}");
        let opt_in = if !OPT_IN_REGIONS.contains(name) {
            "opt-in-not-required"
        } else if used.iter().any(|u| u == *name) {
            "opted-in"
        } else if all || names.iter().any(|n| n == *name) {
            "not-opted-in"
        } else {
            continue;
        };
        let keep = passes(&filters, |filter| match filter {
            "endpoint" => vec![endpoint.clone()],
            "opt-in-status" => vec![opt_in.to_owned()],
            "region-name" => vec![(*name).to_owned()],
            _ => Vec::new(),
        });
        if keep {
            x.open("item");
            x.leaf("regionName", name);
            x.leaf("regionEndpoint", &endpoint);
            x.leaf("optInStatus", opt_in);
            x.close("item");
        }
    }
    x.close("regionInfo");
    Ok(())
}

async fn create_transit_gateway(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let description = params.take("Description").unwrap_or_default();
    if description.chars().count() > 255 {
        return Err(Ec2Error::invalid(
            "Description must be at most 255 characters",
        ));
    }
    let asn = match params.integer("Options.AmazonSideAsn")? {
        None => DEFAULT_ASN,
        Some(asn @ (64512..=65534 | 4_200_000_000..=4_294_967_294)) => {
            u32::try_from(asn).unwrap_or(DEFAULT_ASN)
        }
        Some(asn) => {
            return Err(Ec2Error::invalid(format!(
                "Options.AmazonSideAsn {asn} is not a private ASN (64512-65534 or 4200000000-4294967294)"
            )));
        }
    };
    params.defaults_only("Options", GATEWAY_DEFAULTS)?;
    if !params
        .strings("Options.TransitGatewayCidrBlocks")
        .is_empty()
    {
        return Err(Ec2Error::invalid(
            "Options.TransitGatewayCidrBlocks: the sandbox does not model transit gateway CIDR blocks",
        ));
    }
    let tags = params.tags("transit-gateway")?;
    ready(params, dry_run)?;
    let id = cloud
        .create_transit_gateway(region, asn, &description, tags)
        .await?;
    let world = snapshot(cloud)?;
    let tgw = world
        .transit_gateways
        .get(&id)
        .ok_or_else(|| Ec2Error::internal(format!("transit gateway {id} vanished")))?;
    gateway_xml(x, "transitGateway", tgw, GATEWAY_AVAILABLE);
    Ok(())
}

/// Every gateway (or peering) of a region, page after page: a describe by
/// id answers for all the ids named, wherever they fall in the paging.
async fn every_gateway(cloud: &SimCloud, region: &str) -> Result<Vec<TransitGateway>, Ec2Error> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = cloud
            .describe_transit_gateways(region, None, token.as_deref())
            .await?;
        all.extend(page.items);
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
}

/// A describe by id answers for exactly the ids named: paging it is refused.
fn by_ids_alone(
    ids: &[String],
    max: Option<usize>,
    token: Option<&str>,
    list: &str,
) -> Result<(), Ec2Error> {
    if !ids.is_empty() && (max.is_some() || token.is_some()) {
        return Err(Ec2Error::client(
            "InvalidParameterCombination",
            format!("{list} cannot be used with MaxResults or NextToken"),
        ));
    }
    Ok(())
}

async fn describe_transit_gateways(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let ids = params.strings("TransitGatewayIds");
    let filters = params.filters(GATEWAY_FILTERS)?;
    let max = params.page_size()?;
    let token = params.take("NextToken");
    by_ids_alone(&ids, max, token.as_deref(), "TransitGatewayIds")?;
    ready(params, dry_run)?;
    let (gateways, next) = if ids.is_empty() {
        let page = cloud
            .describe_transit_gateways(region, max, token.as_deref())
            .await?;
        (page.items, page.next_token)
    } else {
        let all = every_gateway(cloud, region).await?;
        if let Some(missing) = ids.iter().find(|id| !all.iter().any(|t| &t.id == *id)) {
            return Err(Ec2Error::gateway_not_found(missing));
        }
        let named = all.into_iter().filter(|t| ids.contains(&t.id)).collect();
        (named, None)
    };
    // Filters narrow each page, as EC2's do: a page may come back short,
    // even empty, with a token for the next.
    x.open("transitGatewaySet");
    for tgw in gateways
        .iter()
        .filter(|tgw| passes(&filters, |name| gateway_values(tgw, name)))
    {
        gateway_xml(x, "item", tgw, GATEWAY_AVAILABLE);
    }
    x.close("transitGatewaySet");
    if let Some(next) = next {
        x.leaf("nextToken", &next);
    }
    Ok(())
}

async fn modify_transit_gateway(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let id = params.required("TransitGatewayId")?;
    let description = params.take("Description");
    let asn = params.integer("Options.AmazonSideAsn")?;
    let route_tables = [
        params.take("Options.AssociationDefaultRouteTableId"),
        params.take("Options.PropagationDefaultRouteTableId"),
    ];
    params.defaults_only("Options", GATEWAY_DEFAULTS)?;
    params.defaults_only("Options", &[("EncryptionSupport", "disable")])?;
    for list in [
        "Options.AddTransitGatewayCidrBlocks",
        "Options.RemoveTransitGatewayCidrBlocks",
    ] {
        if !params.strings(list).is_empty() {
            return Err(Ec2Error::invalid(format!(
                "{list}: the sandbox does not model transit gateway CIDR blocks"
            )));
        }
    }
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 255)
    {
        return Err(Ec2Error::invalid(
            "Description must be at most 255 characters",
        ));
    }
    ready(params, dry_run)?;
    let world = snapshot(cloud)?;
    let current = gateway_in(&world, region, &id)?;
    if let Some(asn) = asn
        && asn != i64::from(current.amazon_side_asn)
    {
        return Err(Ec2Error::invalid(format!(
            "Options.AmazonSideAsn: the sandbox cannot change the ASN of {id} ({} -> {asn})",
            current.amazon_side_asn
        )));
    }
    if let Some(other) = route_tables
        .iter()
        .flatten()
        .find(|rtb| **rtb != current.route_table_id)
    {
        return Err(Ec2Error::invalid(format!(
            "the sandbox models only the default route table {} of {id}, not {other}",
            current.route_table_id
        )));
    }
    let description = description.unwrap_or_else(|| current.description.clone());
    cloud.modify_transit_gateway(&id, &description).await?;
    let world = snapshot(cloud)?;
    let tgw = world
        .transit_gateways
        .get(&id)
        .ok_or_else(|| Ec2Error::gateway_not_found(&id))?;
    gateway_xml(x, "transitGateway", tgw, GATEWAY_AVAILABLE);
    Ok(())
}

async fn delete_transit_gateway(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let id = params.required("TransitGatewayId")?;
    ready(params, dry_run)?;
    let tgw = gateway_in(&*snapshot(cloud)?, region, &id)?.clone();
    cloud.delete_transit_gateway(&id).await?;
    gateway_xml(x, "transitGateway", &tgw, "deleting");
    Ok(())
}

async fn every_peering(cloud: &SimCloud, region: &str) -> Result<Vec<(Peering, String)>, Ec2Error> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = cloud
            .describe_peerings(region, None, token.as_deref())
            .await?;
        all.extend(page.items.into_iter().map(|v| (v.peering, v.state)));
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
}

async fn describe_peerings(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let ids = params.strings("TransitGatewayAttachmentIds");
    let filters = params.filters(PEERING_FILTERS)?;
    let max = params.page_size()?;
    let token = params.take("NextToken");
    by_ids_alone(&ids, max, token.as_deref(), "TransitGatewayAttachmentIds")?;
    ready(params, dry_run)?;
    let (peerings, next) = if ids.is_empty() {
        let page = cloud
            .describe_peerings(region, max, token.as_deref())
            .await?;
        let items = page
            .items
            .into_iter()
            .map(|v| (v.peering, v.state))
            .collect::<Vec<_>>();
        (items, page.next_token)
    } else {
        let all = every_peering(cloud, region).await?;
        if let Some(missing) = ids.iter().find(|id| !all.iter().any(|(p, _)| &p.id == *id)) {
            return Err(Ec2Error::attachment_not_found(missing));
        }
        let named = all
            .into_iter()
            .filter(|(p, _)| ids.contains(&p.id))
            .collect();
        (named, None)
    };
    x.open("transitGatewayPeeringAttachments");
    for (peering, state) in peerings
        .iter()
        .filter(|(p, state)| passes(&filters, |name| peering_values(p, state, name)))
    {
        peering_xml(x, "item", peering, state);
    }
    x.close("transitGatewayPeeringAttachments");
    if let Some(next) = next {
        x.leaf("nextToken", &next);
    }
    Ok(())
}

async fn create_peering(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let tgw = params.required("TransitGatewayId")?;
    let peer = params.required("PeerTransitGatewayId")?;
    let account = params.required("PeerAccountId")?;
    let peer_region = params.required("PeerRegion")?;
    params.defaults_only("Options", &[("DynamicRouting", "disable")])?;
    let tags = params.tags("transit-gateway-attachment")?;
    if account != ACCOUNT_ID {
        return Err(Ec2Error::invalid(format!(
            "PeerAccountId {account}: the sandbox has one account, {ACCOUNT_ID}"
        )));
    }
    if !regions::is_aws(&peer_region) || partition(&peer_region) != partition(region) {
        return Err(Ec2Error::invalid(format!(
            "PeerRegion {peer_region} is not an AWS Region of this partition"
        )));
    }
    ready(params, dry_run)?;
    let id = cloud
        .create_peering(region, &tgw, &peer, &peer_region, tags)
        .await?;
    let world = snapshot(cloud)?;
    let peering = world
        .peerings
        .get(&id)
        .ok_or_else(|| Ec2Error::internal(format!("attachment {id} vanished")))?;
    peering_xml(
        x,
        "transitGatewayPeeringAttachment",
        peering,
        World::peering_state(peering),
    );
    Ok(())
}

async fn accept_peering(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let id = params.required("TransitGatewayAttachmentId")?;
    ready(params, dry_run)?;
    cloud.accept_peering(region, &id).await?;
    let world = snapshot(cloud)?;
    let peering = peering_in(&world, region, &id)?;
    peering_xml(
        x,
        "transitGatewayPeeringAttachment",
        peering,
        World::peering_state(peering),
    );
    Ok(())
}

async fn delete_peering(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let id = params.required("TransitGatewayAttachmentId")?;
    ready(params, dry_run)?;
    // Either side may delete it; a third region does not know it.
    let peering = peering_in(&*snapshot(cloud)?, region, &id)?.clone();
    cloud.delete_peering(&id).await?;
    peering_xml(x, "transitGatewayPeeringAttachment", &peering, "deleting");
    Ok(())
}

async fn put_route(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    replace: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let route_table = params.required("TransitGatewayRouteTableId")?;
    let destination = params.required("DestinationCidrBlock")?;
    let attachment = params.take("TransitGatewayAttachmentId");
    let blackhole = params.boolean("Blackhole")?.unwrap_or(false);
    if blackhole {
        return Err(Ec2Error::invalid(
            "Blackhole: the sandbox does not model blackhole routes",
        ));
    }
    let attachment = attachment
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Ec2Error::missing("TransitGatewayAttachmentId"))?;
    cidr("DestinationCidrBlock", &destination)?;
    ready(params, dry_run)?;
    let world = snapshot(cloud)?;
    let gateway = route_table_in(&world, region, &route_table)?;
    if let Some(peering) = world.peerings.get(&attachment)
        && peering.requester_tgw != gateway.id
        && peering.accepter_tgw != gateway.id
    {
        return Err(Ec2Error::invalid(format!(
            "attachment {attachment} is not attached to transit gateway {}",
            gateway.id
        )));
    }
    cloud
        .put_route(&route_table, &destination, &attachment, replace)
        .await?;
    let route = Route {
        route_table_id: route_table,
        cidr: destination,
        attachment_id: attachment,
    };
    route_xml(x, "route", &route, &world, &gateway.id, "active");
    Ok(())
}

async fn delete_route(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let route_table = params.required("TransitGatewayRouteTableId")?;
    let destination = params.required("DestinationCidrBlock")?;
    ready(params, dry_run)?;
    let world = snapshot(cloud)?;
    let gateway = route_table_in(&world, region, &route_table)?;
    let route = world
        .routes
        .values()
        .find(|r| r.route_table_id == route_table && r.cidr == destination)
        .cloned();
    cloud.delete_route(&route_table, &destination).await?;
    match route {
        Some(route) => route_xml(x, "route", &route, &world, &gateway.id, "deleted"),
        // Created after the look and deleted by this call: all the
        // deletion itself tells is the destination.
        None => {
            x.open("route");
            x.leaf("destinationCidrBlock", &destination);
            x.leaf("type", "static");
            x.leaf("state", "deleted");
            x.close("route");
        }
    }
    Ok(())
}

/// `SearchTransitGatewayRoutes`' cursor: the last destination returned.
fn route_token(cidr: &str) -> String {
    let hex: String = cidr.bytes().map(|b| format!("{b:02x}")).collect();
    format!("r1.{hex}")
}

fn route_after(token: &str) -> Result<String, Ec2Error> {
    let invalid = || Ec2Error::client("InvalidPaginationToken", "the next token is not valid");
    let hex = token.strip_prefix("r1.").ok_or_else(invalid)?;
    if hex.len() % 2 != 0 {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

/// Whether a route passes the filters: value filters as everywhere, the
/// `route-search.*` ones by CIDR containment.
fn route_passes(filters: &[Filter], route: &Route, world: &World, gateway: &str) -> bool {
    let Some(block) = Cidr::parse(&route.cidr) else {
        return false;
    };
    filters.iter().all(|filter| {
        let by_cidr = |relation: fn(&Cidr, &Cidr) -> bool| {
            filter
                .values
                .iter()
                .filter_map(|v| Cidr::parse(v))
                .any(|wanted| relation(&block, &wanted))
        };
        match filter.name.as_str() {
            "route-search.exact-match" => by_cidr(|route, wanted| route == wanted),
            "route-search.subnet-of-match" => by_cidr(|route, wanted| wanted.contains(route)),
            "route-search.supernet-of-match" | "route-search.longest-prefix-match" => {
                by_cidr(|route, wanted| route.contains(wanted))
            }
            name => {
                let have: Vec<String> = match name {
                    "type" => vec!["static".to_owned()],
                    "state" => vec!["active".to_owned()],
                    "attachment.transit-gateway-attachment-id" => {
                        vec![route.attachment_id.clone()]
                    }
                    "attachment.resource-type" => vec!["peering".to_owned()],
                    // No route goes to a prefix list: `prefix-list-id` matches none.
                    "attachment.resource-id" => peer_of(world, &route.attachment_id, gateway)
                        .map(str::to_owned)
                        .into_iter()
                        .collect(),
                    _ => Vec::new(),
                };
                filter
                    .values
                    .iter()
                    .any(|want| have.iter().any(|value| glob_matches(want, value)))
            }
        }
    })
}

async fn search_routes(
    cloud: &SimCloud,
    region: &str,
    mut params: Params,
    dry_run: bool,
    x: &mut Xml,
) -> Result<(), Ec2Error> {
    let route_table = params.required("TransitGatewayRouteTableId")?;
    let filters = params.filters(ROUTE_FILTERS)?;
    if filters.is_empty() {
        return Err(Ec2Error::missing("Filter"));
    }
    for filter in filters
        .iter()
        .filter(|f| f.name.starts_with("route-search."))
    {
        for value in &filter.values {
            cidr(&filter.name, value)?;
        }
    }
    let max = params.page_size()?.unwrap_or(DEFAULT_ROUTE_PAGE);
    let after = params
        .take("NextToken")
        .map(|t| route_after(&t))
        .transpose()?;
    ready(params, dry_run)?;
    let world = snapshot(cloud)?;
    let gateway = route_table_in(&world, region, &route_table)?;
    let mut routes: Vec<Route> = cloud
        .search_routes(&route_table)
        .await?
        .into_iter()
        .filter(|route| route_passes(&filters, route, &world, &gateway.id))
        .collect();
    routes.sort_by(|a, b| a.cidr.cmp(&b.cidr));
    if let Some(filter) = filters
        .iter()
        .find(|f| f.name == "route-search.longest-prefix-match")
    {
        // Of the routes covering an address, only the most specific ones.
        let longest = routes
            .iter()
            .filter_map(|r| Cidr::parse(&r.cidr))
            .filter(|block| {
                filter
                    .values
                    .iter()
                    .filter_map(|v| Cidr::parse(v))
                    .any(|wanted| block.contains(&wanted))
            })
            .map(|block| block.len)
            .max();
        routes.retain(|r| Cidr::parse(&r.cidr).map(|b| b.len) == longest);
    }
    let start = match &after {
        Some(after) => routes
            .iter()
            .position(|r| r.cidr > *after)
            .unwrap_or(routes.len()),
        None => 0,
    };
    let end = (start + max).min(routes.len());
    let more = end < routes.len();
    x.open("routeSet");
    for route in &routes[start..end] {
        route_xml(x, "item", route, &world, &gateway.id, "active");
    }
    x.close("routeSet");
    x.leaf(
        "additionalRoutesAvailable",
        if more { "true" } else { "false" },
    );
    if more && end > start {
        x.leaf("nextToken", &route_token(&routes[end - 1].cidr));
    }
    Ok(())
}

// ----- the handler -----------------------------------------------------------

async fn serve(
    cloud: &SimCloud,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Result<String, Ec2Error> {
    let region = request_region(headers)?;
    let mut params = Params::decode(body)?;
    let action = params
        .take("Action")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            Ec2Error::client(
                "MissingAction",
                "The request must contain the parameter Action",
            )
        })?;
    if ACTIONS.contains(&action.as_str()) {
        match params.take("Version") {
            None => return Err(Ec2Error::missing("Version")),
            Some(version) if version != API_VERSION => {
                return Err(Ec2Error::invalid(format!(
                    "Version {version}: the sandbox speaks EC2 API version {API_VERSION} only"
                )));
            }
            Some(_) => {}
        }
    }
    tracing::debug!(%action, %region, "sandbox EC2 request");
    dispatch(cloud, &region, &action, params, request_id).await
}

/// Serves one EC2 Query request.
pub(crate) async fn handle(
    State(cloud): State<SimCloud>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = crate::request_id();
    let mut response = match serve(&cloud, &headers, &body, &request_id).await {
        Ok(document) => xml_response(StatusCode::OK, document),
        Err(error) => error.into_response(&request_id),
    };
    // EC2 names the request in the body and, as every AWS API, in a
    // header: the one the AWS SDKs read.
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(crate::REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(body: &str) -> Params {
        Params::decode(body.as_bytes()).expect("decodes")
    }

    #[test]
    fn a_form_body_decodes_with_plus_and_percent_escapes() {
        let mut p = params(
            "Action=DescribeTransitGateways&Description=US+East%2FWest%20%26+more&Empty=&Bare",
        );
        assert_eq!(p.take("Action").as_deref(), Some("DescribeTransitGateways"));
        assert_eq!(
            p.take("Description").as_deref(),
            Some("US East/West & more")
        );
        assert_eq!(p.take("Empty").as_deref(), Some(""));
        assert_eq!(p.take("Bare").as_deref(), Some(""));
        p.finish().expect("nothing left");
    }

    #[test]
    fn a_bad_escape_or_a_repeated_parameter_is_refused() {
        for body in ["A=%2", "A=%zz", "A=%+1", "A=%C3%28", "A=1&A=2"] {
            let error = Params::decode(body.as_bytes()).expect_err(body);
            assert_eq!(error.code, "InvalidParameterValue", "{body}");
        }
    }

    #[test]
    fn lists_are_read_in_numeric_order_and_leftovers_are_unknown_parameters() {
        let mut p = params(
            "TransitGatewayIds.10=tgw-c&TransitGatewayIds.2=tgw-b&TransitGatewayIds.1=tgw-a&TransitGatewayIds.0=tgw-zero",
        );
        assert_eq!(p.strings("TransitGatewayIds"), ["tgw-a", "tgw-b", "tgw-c"]);
        let error = p.finish().expect_err("index 0 is not a member");
        assert_eq!(error.code, "UnknownParameter");
        assert!(
            error.message.contains("TransitGatewayIds.0"),
            "{}",
            error.message
        );
    }

    #[test]
    fn filters_decode_with_their_values_and_unknown_names_are_refused() {
        let mut p = params(
            "Filter.1.Name=type&Filter.1.Value.1=static&Filter.2.Name=tag%3Ameridian.dev%2Fowner&Filter.2.Value.1=a&Filter.2.Value.2=b",
        );
        let filters = p.filters(&["type", "tag:"]).expect("filters");
        assert_eq!(
            filters,
            [
                Filter {
                    name: "type".into(),
                    values: vec!["static".into()]
                },
                Filter {
                    name: "tag:meridian.dev/owner".into(),
                    values: vec!["a".into(), "b".into()]
                },
            ]
        );
        p.finish().expect("all read");
        let error = params("Filter.1.Name=colour&Filter.1.Value.1=red")
            .filters(&["type"])
            .expect_err("unknown filter");
        assert_eq!(error.code, "InvalidParameterValue");
        assert!(error.message.contains("'colour'"));
        let error = params("Filter.1.Name=type")
            .filters(&["type"])
            .expect_err("no values");
        assert!(error.message.contains("no values"));
    }

    #[test]
    fn tag_specifications_decode_and_must_name_the_action_s_resource_type() {
        let body = "TagSpecification.1.ResourceType=transit-gateway&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=core-us-east-1&TagSpecification.1.Tag.2.Key=meridian.dev%2Fmesh&TagSpecification.1.Tag.2.Value=core&TagSpecification.1.Tag.3.Key=empty";
        let tags = params(body).tags("transit-gateway").expect("tags");
        assert_eq!(
            tags,
            BTreeMap::from([
                ("Name".to_owned(), "core-us-east-1".to_owned()),
                ("empty".to_owned(), String::new()),
                ("meridian.dev/mesh".to_owned(), "core".to_owned()),
            ])
        );
        let error = params(body)
            .tags("transit-gateway-attachment")
            .expect_err("wrong type");
        assert_eq!(error.code, "InvalidParameterValue");
        let error = params("TagSpecification.1.ResourceType=transit-gateway&TagSpecification.1.Tag.1.Key=aws%3Aowner")
            .tags("transit-gateway")
            .expect_err("reserved prefix");
        assert!(error.message.contains("reserved"));
        let error = params("TagSpecification.1.Tag.1.Key=a")
            .tags("transit-gateway")
            .expect_err("no type");
        assert_eq!(error.code, "MissingParameter");
    }

    #[test]
    fn the_region_comes_from_the_credential_scope() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_region(&headers).expect("default"), "us-east-1");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-central-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
        );
        assert_eq!(request_region(&headers).expect("scoped"), "eu-central-1");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/moon-base-1/ec2/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        let error = request_region(&headers).expect_err("unknown region");
        assert_eq!(
            (error.status, error.code.as_str()),
            (StatusCode::UNAUTHORIZED, "AuthFailure")
        );
    }

    #[test]
    fn a_query_request_is_told_from_a_json_one() {
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        assert!(is_query_request(&form, b""));
        let none = HeaderMap::new();
        assert!(is_query_request(
            &none,
            b"Action=DescribeRegions&Version=2016-11-15"
        ));
        assert!(is_query_request(
            &none,
            b"Version=2016-11-15&Action=DescribeRegions"
        ));
        assert!(!is_query_request(&none, b"{\"MaxResults\": 5}"));
    }

    #[test]
    fn text_is_escaped_for_xml() {
        assert!(matches!(escape("plain text"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a<b & \"c\" 'd'>\r\n\u{1}\tz"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;&#xD;\n\u{FFFD}\tz"
        );
    }

    fn gateway() -> TransitGateway {
        TransitGateway {
            id: "tgw-00000000000000001".to_owned(),
            region: "eu-central-1".to_owned(),
            amazon_side_asn: 64513,
            description: "EU <Central>".to_owned(),
            route_table_id: "tgw-rtb-00000000000000001".to_owned(),
            tags: BTreeMap::from([("Name".to_owned(), "core-eu-central-1".to_owned())]),
        }
    }

    #[test]
    fn a_gateway_renders_in_ec2_s_shape() {
        let mut x = Xml::response("DescribeTransitGateways", "req-1");
        x.open("transitGatewaySet");
        gateway_xml(&mut x, "item", &gateway(), "available");
        x.close("transitGatewaySet");
        assert_eq!(
            x.finish(),
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<DescribeTransitGatewaysResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">",
                "<requestId>req-1</requestId><transitGatewaySet><item>",
                "<transitGatewayId>tgw-00000000000000001</transitGatewayId>",
                "<transitGatewayArn>arn:aws:ec2:eu-central-1:123456789012:transit-gateway/tgw-00000000000000001</transitGatewayArn>",
                "<state>available</state><ownerId>123456789012</ownerId>",
                "<description>EU &lt;Central&gt;</description>",
                "<options><amazonSideAsn>64513</amazonSideAsn>",
                "<associationDefaultRouteTableId>tgw-rtb-00000000000000001</associationDefaultRouteTableId>",
                "<propagationDefaultRouteTableId>tgw-rtb-00000000000000001</propagationDefaultRouteTableId>",
                "<autoAcceptSharedAttachments>disable</autoAcceptSharedAttachments>",
                "<defaultRouteTableAssociation>enable</defaultRouteTableAssociation>",
                "<defaultRouteTablePropagation>enable</defaultRouteTablePropagation>",
                "<vpnEcmpSupport>enable</vpnEcmpSupport><dnsSupport>enable</dnsSupport>",
                "<securityGroupReferencingSupport>disable</securityGroupReferencingSupport>",
                "<multicastSupport>disable</multicastSupport></options>",
                "<tagSet><item><key>Name</key><value>core-eu-central-1</value></item></tagSet>",
                "</item></transitGatewaySet></DescribeTransitGatewaysResponse>"
            )
        );
    }

    #[test]
    fn a_peering_and_a_route_render_in_ec2_s_shape() {
        let peering = Peering {
            id: "tgw-attach-00000000000000003".to_owned(),
            requester_tgw: "tgw-00000000000000001".to_owned(),
            requester_region: "us-east-1".to_owned(),
            accepter_tgw: "tgw-00000000000000002".to_owned(),
            accepter_region: "eu-central-1".to_owned(),
            state: "pendingAcceptance".to_owned(),
            available_at_ms: 0,
            tags: BTreeMap::new(),
        };
        let mut x = Xml::response("CreateTransitGatewayPeeringAttachment", "req-2");
        peering_xml(
            &mut x,
            "transitGatewayPeeringAttachment",
            &peering,
            "pendingAcceptance",
        );
        assert_eq!(
            x.finish(),
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<CreateTransitGatewayPeeringAttachmentResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">",
                "<requestId>req-2</requestId><transitGatewayPeeringAttachment>",
                "<transitGatewayAttachmentId>tgw-attach-00000000000000003</transitGatewayAttachmentId>",
                "<requesterTgwInfo><transitGatewayId>tgw-00000000000000001</transitGatewayId><ownerId>123456789012</ownerId><region>us-east-1</region></requesterTgwInfo>",
                "<accepterTgwInfo><transitGatewayId>tgw-00000000000000002</transitGatewayId><ownerId>123456789012</ownerId><region>eu-central-1</region></accepterTgwInfo>",
                "<options><dynamicRouting>disable</dynamicRouting></options>",
                "<status><code>pendingAcceptance</code><message>Pending Acceptance</message></status>",
                "<state>pendingAcceptance</state><tagSet></tagSet>",
                "</transitGatewayPeeringAttachment></CreateTransitGatewayPeeringAttachmentResponse>"
            )
        );
        let mut world = World::default();
        world.peerings.insert(peering.id.clone(), peering);
        let route = Route {
            route_table_id: "tgw-rtb-00000000000000002".to_owned(),
            cidr: "10.1.0.0/16".to_owned(),
            attachment_id: "tgw-attach-00000000000000003".to_owned(),
        };
        let mut x = Xml::response("SearchTransitGatewayRoutes", "req-3");
        route_xml(
            &mut x,
            "item",
            &route,
            &world,
            "tgw-00000000000000002",
            "active",
        );
        assert!(
            x.finish().contains(concat!(
                "<item><destinationCidrBlock>10.1.0.0/16</destinationCidrBlock>",
                "<transitGatewayAttachments><item><resourceId>tgw-00000000000000001</resourceId>",
                "<transitGatewayAttachmentId>tgw-attach-00000000000000003</transitGatewayAttachmentId>",
                "<resourceType>peering</resourceType></item></transitGatewayAttachments>",
                "<type>static</type><state>active</state></item>"
            )),
            "the route names the peer gateway as its resource"
        );
    }

    #[test]
    fn errors_render_in_ec2_s_shape_with_its_codes_and_statuses() {
        let error = Ec2Error::gateway_not_found("tgw-1<2");
        assert_eq!(
            error.body("req-4"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidTransitGatewayID.NotFound</Code><Message>The transitGateway ID &apos;tgw-1&lt;2&apos; does not exist</Message></Error></Errors><RequestID>req-4</RequestID></Response>"
        );
        let throttled = Ec2Error::from(SimError::Throttling {
            operation: "DescribeTransitGateways".into(),
        });
        assert_eq!(
            (throttled.status, throttled.code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "RequestLimitExceeded")
        );
        let internal = Ec2Error::from(SimError::Internal {
            operation: "CreateTransitGateway".into(),
        });
        assert_eq!(
            (internal.status, internal.code.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        );
        let injected = Ec2Error::from(SimError::Injected {
            operation: "CreateTransitGateway".into(),
        });
        assert_eq!(
            (injected.status, injected.code.as_str()),
            (StatusCode::BAD_REQUEST, "InjectedFailure")
        );
        let token = Ec2Error::from(SimError::Api {
            operation: "DescribeTransitGateways".into(),
            code: "InvalidNextTokenException",
            message: "bad".into(),
        });
        assert_eq!(token.code, "InvalidPaginationToken");
    }

    #[test]
    fn filter_values_take_ec2_s_wildcards() {
        assert!(glob_matches("core-*", "core-us-east-1"));
        assert!(glob_matches("*east*", "core-us-east-1"));
        assert!(glob_matches("tgw-????", "tgw-12ab"));
        assert!(!glob_matches("tgw-????", "tgw-12abc"));
        assert!(glob_matches("a\\*b", "a*b"));
        assert!(!glob_matches("a\\*b", "axb"));
        assert!(glob_matches("*", ""));
        assert!(!glob_matches("a*c", "abcd"));
    }

    #[test]
    fn cidr_blocks_nest() {
        let wide = Cidr::parse("10.0.0.0/8").expect("v4");
        let narrow = Cidr::parse("10.1.0.0/16").expect("v4");
        assert!(wide.contains(&narrow) && !narrow.contains(&wide) && wide.contains(&wide));
        assert!(!Cidr::parse("11.0.0.0/16").expect("v4").contains(&narrow));
        assert!(
            Cidr::parse("::/0")
                .expect("v6")
                .contains(&Cidr::parse("2001:db8::/32").expect("v6"))
        );
        assert!(!Cidr::parse("::/0").expect("v6").contains(&narrow));
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/+8", "10.0.0/8", "x/8"] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_route_token_round_trips_and_a_forged_one_is_refused() {
        assert_eq!(
            route_after(&route_token("10.1.0.0/16")).expect("round trip"),
            "10.1.0.0/16"
        );
        for bad in ["10.1.0.0/16", "r1.zz", "r1.a"] {
            assert_eq!(
                route_after(bad).expect_err(bad).code,
                "InvalidPaginationToken"
            );
        }
    }

    // ----- operations against a simulated cloud in a scratch directory -----

    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn cloud() -> (SimCloud, Scratch) {
        let dir = std::env::temp_dir().join(format!(
            "meridian-ec2-test-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let store = meridian_sim::SimStore::open(&dir).expect("store");
        store
            .transact(|world| world.settings.peering_delay_ms = 0)
            .expect("settings");
        (SimCloud::new(store), Scratch(dir))
    }

    async fn call(cloud: &SimCloud, region: &str, body: &str) -> Result<String, Ec2Error> {
        let mut params = params(body);
        let action = params.take("Action").expect("action");
        dispatch(cloud, region, &action, params, "req").await
    }

    fn between<'a>(document: &'a str, open: &str, close: &str) -> &'a str {
        let start = document.find(open).expect(open) + open.len();
        let end = document[start..].find(close).expect(close) + start;
        &document[start..end]
    }

    #[tokio::test]
    async fn gateways_are_seen_only_in_their_own_region() {
        let (cloud, _dir) = cloud();
        let created = call(
            &cloud,
            "eu-central-1",
            "Action=CreateTransitGateway&Description=EU&Options.AmazonSideAsn=64513&Options.DnsSupport=enable&TagSpecification.1.ResourceType=transit-gateway&TagSpecification.1.Tag.1.Key=Name&TagSpecification.1.Tag.1.Value=eu",
        )
        .await
        .expect("created");
        let id = between(&created, "<transitGatewayId>", "</transitGatewayId>").to_owned();
        let here = call(
            &cloud,
            "eu-central-1",
            &format!("Action=DescribeTransitGateways&TransitGatewayIds.1={id}"),
        )
        .await
        .expect("described");
        assert!(
            here.contains("<amazonSideAsn>64513</amazonSideAsn>"),
            "{here}"
        );
        let elsewhere = call(&cloud, "us-east-1", "Action=DescribeTransitGateways")
            .await
            .expect("listed");
        assert!(
            elsewhere.contains("<transitGatewaySet></transitGatewaySet>"),
            "{elsewhere}"
        );
        let error = call(
            &cloud,
            "us-east-1",
            &format!("Action=DeleteTransitGateway&TransitGatewayId={id}"),
        )
        .await
        .expect_err("not in us-east-1");
        assert_eq!(error.code, "InvalidTransitGatewayID.NotFound");
        let error = call(
            &cloud,
            "eu-central-1",
            "Action=CreateTransitGateway&Options.DnsSupport=disable",
        )
        .await
        .expect_err("an unmodelled option away from its default");
        assert_eq!(error.code, "InvalidParameterValue");
        let error = call(
            &cloud,
            "eu-central-1",
            "Action=CreateTransitGateway&DryRun=true",
        )
        .await
        .expect_err("dry run");
        assert_eq!(
            (error.status, error.code.as_str()),
            (StatusCode::PRECONDITION_FAILED, "DryRunOperation")
        );
        let world = cloud.store().read().expect("world");
        assert_eq!(
            world.transit_gateways.len(),
            1,
            "neither refusal created a gateway"
        );
        assert_eq!(world.transit_gateways[&id].tags["Name"], "eu");
    }

    #[tokio::test]
    async fn a_peering_carries_routes_that_filters_and_paging_select() {
        let (cloud, _dir) = cloud();
        let mut gateways = Vec::new();
        for region in ["us-east-1", "eu-central-1"] {
            let created = call(&cloud, region, "Action=CreateTransitGateway")
                .await
                .expect("created");
            gateways.push((
                between(&created, "<transitGatewayId>", "</transitGatewayId>").to_owned(),
                between(
                    &created,
                    "<associationDefaultRouteTableId>",
                    "</associationDefaultRouteTableId>",
                )
                .to_owned(),
            ));
        }
        let ((us, us_rtb), (eu, _)) = (&gateways[0], &gateways[1]);
        let created = call(
            &cloud,
            "us-east-1",
            &format!("Action=CreateTransitGatewayPeeringAttachment&TransitGatewayId={us}&PeerTransitGatewayId={eu}&PeerAccountId=123456789012&PeerRegion=eu-central-1&TagSpecification.1.ResourceType=transit-gateway-attachment&TagSpecification.1.Tag.1.Key=mesh&TagSpecification.1.Tag.1.Value=core"),
        )
        .await
        .expect("peering");
        let attachment = between(
            &created,
            "<transitGatewayAttachmentId>",
            "</transitGatewayAttachmentId>",
        )
        .to_owned();
        assert!(
            created.contains("<state>pendingAcceptance</state>"),
            "{created}"
        );
        let error = call(&cloud, "ap-southeast-1", &format!("Action=DescribeTransitGatewayPeeringAttachments&TransitGatewayAttachmentIds.1={attachment}"))
            .await
            .expect_err("a third region does not know it");
        assert_eq!(error.code, "InvalidTransitGatewayAttachmentID.NotFound");
        call(&cloud, "eu-central-1", &format!("Action=AcceptTransitGatewayPeeringAttachment&TransitGatewayAttachmentId={attachment}"))
            .await
            .expect("accepted");
        let tagged = call(&cloud, "eu-central-1", "Action=DescribeTransitGatewayPeeringAttachments&Filter.1.Name=tag%3Amesh&Filter.1.Value.1=co*")
            .await
            .expect("by tag");
        assert!(tagged.contains("<state>available</state>"), "{tagged}");
        for cidr in ["10.1.0.0/16", "10.2.0.0/16", "10.2.1.0/24"] {
            call(
                &cloud,
                "us-east-1",
                &format!("Action=CreateTransitGatewayRoute&TransitGatewayRouteTableId={us_rtb}&DestinationCidrBlock={cidr}&TransitGatewayAttachmentId={attachment}"),
            )
            .await
            .expect("route");
        }
        let error = call(
            &cloud,
            "us-east-1",
            &format!("Action=ReplaceTransitGatewayRoute&TransitGatewayRouteTableId={us_rtb}&DestinationCidrBlock=10.9.0.0/16&TransitGatewayAttachmentId={attachment}"),
        )
        .await
        .expect_err("nothing to replace");
        assert_eq!(error.code, "InvalidRoute.NotFound");
        let search = |filter: &str, extra: &str| {
            format!(
                "Action=SearchTransitGatewayRoutes&TransitGatewayRouteTableId={us_rtb}&{filter}{extra}"
            )
        };
        let page = call(
            &cloud,
            "us-east-1",
            &search(
                "Filter.1.Name=type&Filter.1.Value.1=static",
                "&MaxResults=5",
            ),
        )
        .await
        .expect("all");
        assert_eq!(page.matches("<destinationCidrBlock>").count(), 3, "{page}");
        assert!(page.contains("<additionalRoutesAvailable>false</additionalRoutesAvailable>"));
        let longest = call(
            &cloud,
            "us-east-1",
            &search(
                "Filter.1.Name=route-search.longest-prefix-match&Filter.1.Value.1=10.2.1.7/32",
                "",
            ),
        )
        .await
        .expect("longest");
        assert_eq!(
            between(
                &longest,
                "<destinationCidrBlock>",
                "</destinationCidrBlock>"
            ),
            "10.2.1.0/24"
        );
        assert_eq!(
            longest.matches("<destinationCidrBlock>").count(),
            1,
            "{longest}"
        );
        let subnets = call(
            &cloud,
            "us-east-1",
            &search(
                "Filter.1.Name=route-search.subnet-of-match&Filter.1.Value.1=10.2.0.0/15",
                "",
            ),
        )
        .await
        .expect("subnets");
        assert_eq!(
            subnets.matches("<destinationCidrBlock>").count(),
            2,
            "{subnets}"
        );
        let error = call(
            &cloud,
            "eu-central-1",
            &search("Filter.1.Name=type&Filter.1.Value.1=static", ""),
        )
        .await
        .expect_err("the route table is us-east-1's");
        assert_eq!(error.code, "InvalidRouteTableID.NotFound");
        let error = call(
            &cloud,
            "us-east-1",
            &format!("Action=SearchTransitGatewayRoutes&TransitGatewayRouteTableId={us_rtb}"),
        )
        .await
        .expect_err("filters are required");
        assert_eq!(error.code, "MissingParameter");
        let deleted = call(&cloud, "eu-central-1", &format!("Action=DeleteTransitGatewayPeeringAttachment&TransitGatewayAttachmentId={attachment}"))
            .await
            .expect("the accepter's side may delete it");
        assert!(deleted.contains("<state>deleting</state>"), "{deleted}");
        assert!(
            cloud.store().read().expect("world").routes.is_empty(),
            "its routes went with it"
        );
    }

    #[tokio::test]
    async fn describes_page_with_tokens_and_a_describe_by_id_reads_every_page() {
        let (cloud, _dir) = cloud();
        cloud
            .store()
            .transact(|world| world.settings.max_page_size = 1)
            .expect("settings");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let created = call(&cloud, "us-east-1", "Action=CreateTransitGateway")
                .await
                .expect("created");
            ids.push(between(&created, "<transitGatewayId>", "</transitGatewayId>").to_owned());
        }
        let first = call(
            &cloud,
            "us-east-1",
            "Action=DescribeTransitGateways&MaxResults=5",
        )
        .await
        .expect("page 1");
        assert_eq!(first.matches("<transitGatewayId>").count(), 1, "{first}");
        let token = between(&first, "<nextToken>", "</nextToken>").to_owned();
        let second = call(
            &cloud,
            "us-east-1",
            &format!("Action=DescribeTransitGateways&NextToken={token}"),
        )
        .await
        .expect("page 2");
        assert_eq!(
            between(&second, "<transitGatewayId>", "</transitGatewayId>"),
            ids[1]
        );
        assert!(!second.contains("<nextToken>"), "{second}");
        let both = call(
            &cloud,
            "us-east-1",
            &format!(
                "Action=DescribeTransitGateways&TransitGatewayIds.1={}&TransitGatewayIds.2={}",
                ids[1], ids[0]
            ),
        )
        .await
        .expect("by id");
        assert_eq!(both.matches("<transitGatewayId>").count(), 2, "{both}");
        let error = call(
            &cloud,
            "us-east-1",
            "Action=DescribeTransitGateways&TransitGatewayIds.1=tgw-0000000000000beef",
        )
        .await
        .expect_err("unknown id");
        assert_eq!(error.code, "InvalidTransitGatewayID.NotFound");
        let error = call(
            &cloud,
            "us-east-1",
            "Action=DescribeTransitGateways&MaxResults=4",
        )
        .await
        .expect_err("too small");
        assert_eq!(error.code, "InvalidParameterValue");
    }

    #[tokio::test]
    async fn regions_describe_the_partition_and_unknown_actions_are_refused() {
        let (cloud, _dir) = cloud();
        let all = call(&cloud, "us-east-1", "Action=DescribeRegions")
            .await
            .expect("regions");
        assert!(
            all.contains("<regionName>ap-southeast-1</regionName>"),
            "{all}"
        );
        assert!(all.contains("<regionEndpoint>ec2.eu-central-1.amazonaws.com</regionEndpoint>"));
        assert!(
            !all.contains("cn-north-1") && !all.contains("us-gov-west-1"),
            "{all}"
        );
        let one = call(
            &cloud,
            "us-east-1",
            "Action=DescribeRegions&RegionName.1=me-central-1",
        )
        .await
        .expect("one");
        assert_eq!(one.matches("<regionName>").count(), 1);
        // An opt-in Region the account never enabled: named, it is
        // described as not opted in; unnamed, it is not listed.
        assert!(
            one.contains("<optInStatus>not-opted-in</optInStatus>"),
            "{one}"
        );
        assert!(!all.contains("me-central-1"), "{all}");
        let every = call(
            &cloud,
            "us-east-1",
            "Action=DescribeRegions&AllRegions=true",
        )
        .await
        .expect("all regions");
        assert!(
            every.contains("<regionName>me-central-1</regionName>"),
            "{every}"
        );
        let china = call(&cloud, "cn-north-1", "Action=DescribeRegions")
            .await
            .expect("china");
        assert!(
            china.contains("<regionEndpoint>ec2.cn-northwest-1.amazonaws.com.cn</regionEndpoint>"),
            "{china}"
        );
        let error = call(&cloud, "us-east-1", "Action=RunInstances&ImageId=ami-1")
            .await
            .expect_err("not served");
        assert_eq!(error.code, "InvalidAction");
        assert!(error.message.contains("sandbox"), "{}", error.message);
        let error = call(&cloud, "us-east-1", "Action=DescribeRegions&Colour=red")
            .await
            .expect_err("unknown parameter");
        assert_eq!(error.code, "UnknownParameter");
        let error = call(
            &cloud,
            "us-east-1",
            "Action=DescribeTransitGateways&NextToken=c1.bogus!",
        )
        .await
        .expect_err("bad token");
        assert_eq!(error.code, "InvalidPaginationToken");
        let world = cloud.store().read().expect("world");
        assert_eq!(
            world.calls["DescribeRegions"].ok, 4,
            "DescribeRegions is a counted call"
        );
    }
}
