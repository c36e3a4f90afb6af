//! The AWS Global Accelerator wire protocol over the simulated cloud.
//!
//! A local emulator, not a cloud: it serves `awsJson1_1` (`POST /` with
//! `X-Amz-Target: GlobalAccelerator_V20180706.<Operation>`, JSON bodies as the
//! published service model, errors as `{"__type": "<Code>", "Message": ...}`
//! with HTTP 400) so that the real `aws` provider, the official AWS SDKs and
//! the AWS CLI can be exercised with no AWS account. It accepts any SigV4
//! signature and checks none: never expose it beyond loopback.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use meridian_provider::{
    EndpointGroupSpec, EndpointSpec, GaHealthCheck, ListenerSpec, PortOverride, PortRange,
};
use meridian_sim::cloud::{AcceleratorView, EndpointGroupView, SimCloud, SimError};
use meridian_sim::world::{Accelerator, Listener, World};
use serde_json::{Value, json};

/// The JSON protocol's target prefix for Global Accelerator.
pub const TARGET_PREFIX: &str = "GlobalAccelerator_V20180706.";

/// An error the sandbox answers with.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidArgumentException".to_owned(),
            message: message.into(),
        }
    }
}

impl From<SimError> for ApiError {
    fn from(error: SimError) -> Self {
        // An injected failure (`sim faults --fail-operation`) is permanent,
        // as the EC2 and Compute sandboxes answer it: a 400 no client retries.
        let status = match &error {
            SimError::Internal { .. } | SimError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match &error {
            SimError::Internal { .. } | SimError::Store(_) => {
                "InternalServiceErrorException".to_owned()
            }
            other => other.code().to_owned(),
        };
        let message = match &error {
            SimError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Self {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.code, "Message": self.message}).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        if let Ok(value) = HeaderValue::from_str(&self.code) {
            headers.insert("x-amzn-errortype", value);
        }
        response
    }
}

type Answer = Result<Value, ApiError>;

fn string<'a>(input: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    input
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(format!("{field} is required")))
}

fn opt_str<'a>(input: &'a Value, field: &str) -> Option<&'a str> {
    input.get(field).and_then(Value::as_str)
}

fn int_in(input: &Value, field: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let n = value
                .as_f64()
                .ok_or_else(|| ApiError::invalid(format!("{field} must be a number")))?;
            if n.fract() != 0.0 && field != "TrafficDialPercentage" {
                return Err(ApiError::invalid(format!("{field} must be an integer")));
            }
            if n < lo as f64 || n > hi as f64 {
                return Err(ApiError::invalid(format!(
                    "{field} must be between {lo} and {hi}, got {n}"
                )));
            }
            Ok(Some(n as i64))
        }
    }
}

fn one_of<'a>(
    input: &'a Value,
    field: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    match opt_str(input, field) {
        None => Ok(None),
        Some(value) if allowed.contains(&value) => Ok(Some(value)),
        Some(value) => Err(ApiError::invalid(format!(
            "{field} must be one of {}, got {value}",
            allowed.join(", ")
        ))),
    }
}

fn port(n: i64) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn accelerator_json(view: &AcceleratorView) -> Value {
    let a = &view.accelerator;
    json!({
        "AcceleratorArn": a.arn,
        "Name": a.name,
        "IpAddressType": a.ip_address_type,
        "Enabled": a.enabled,
        "IpSets": [{"IpFamily": "IPv4", "IpAddresses": a.ip_addresses, "IpAddressFamily": "IPv4"}],
        "DnsName": a.dns_name,
        "Status": view.status,
        "CreatedTime": seconds(a.created_ms),
        "LastModifiedTime": seconds(a.modified_ms.max(a.created_ms)),
    })
}

fn listener_json(listener: &Listener) -> Value {
    json!({
        "ListenerArn": listener.arn,
        "PortRanges": listener.spec.port_ranges.iter().map(|r| json!({"FromPort": r.from, "ToPort": r.to})).collect::<Vec<_>>(),
        "Protocol": listener.spec.protocol,
        "ClientAffinity": listener.spec.client_affinity,
    })
}

fn group_json(view: &EndpointGroupView) -> Value {
    let g = &view.group;
    let mut value = json!({
        "EndpointGroupArn": g.arn,
        "EndpointGroupRegion": g.spec.region,
        "EndpointDescriptions": g.endpoints.iter().zip(&view.health).map(|(e, health)| json!({
            "EndpointId": e.spec.id,
            "Weight": e.spec.weight,
            "HealthState": health,
            "ClientIPPreservationEnabled": e.spec.client_ip_preservation,
        })).collect::<Vec<_>>(),
        "TrafficDialPercentage": f64::from(g.spec.traffic_dial),
        "HealthCheckPort": g.spec.health_check.port,
        "HealthCheckProtocol": g.spec.health_check.protocol,
        "HealthCheckIntervalSeconds": g.spec.health_check.interval_seconds,
        "ThresholdCount": g.spec.health_check.threshold_count,
        "PortOverrides": g.spec.port_overrides.iter().map(|o| json!({"ListenerPort": o.listener_port, "EndpointPort": o.endpoint_port})).collect::<Vec<_>>(),
    });
    if let Some(path) = &g.spec.health_check.path {
        value["HealthCheckPath"] = json!(path);
    }
    value
}

fn tags_of(input: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let mut tags = BTreeMap::new();
    for tag in input
        .get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = string(tag, "Key")?;
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or("");
        if key.is_empty() || key.len() > 128 || value.len() > 256 {
            return Err(ApiError::invalid(
                "tag keys are 1-128 characters and values at most 256",
            ));
        }
        tags.insert(key.to_owned(), value.to_owned());
    }
    Ok(tags)
}

fn port_ranges(input: &Value) -> Result<Option<Vec<PortRange>>, ApiError> {
    let Some(ranges) = input.get("PortRanges") else {
        return Ok(None);
    };
    let ranges = ranges
        .as_array()
        .ok_or_else(|| ApiError::invalid("PortRanges must be a list"))?;
    if ranges.is_empty() || ranges.len() > 10 {
        return Err(ApiError::invalid("PortRanges takes 1 to 10 ranges"));
    }
    let mut out = Vec::new();
    for range in ranges {
        let from = int_in(range, "FromPort", 1, 65535)?
            .ok_or_else(|| ApiError::invalid("FromPort is required"))?;
        let to = int_in(range, "ToPort", 1, 65535)?
            .ok_or_else(|| ApiError::invalid("ToPort is required"))?;
        if from > to {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidPortRangeException".to_owned(),
                message: format!("FromPort {from} is greater than ToPort {to}"),
            });
        }
        out.push(PortRange {
            from: port(from),
            to: port(to),
        });
    }
    out.sort();
    Ok(Some(out))
}

fn endpoints(input: &Value, field: &str) -> Result<Option<Vec<EndpointSpec>>, ApiError> {
    let Some(list) = input.get(field) else {
        return Ok(None);
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::invalid(format!("{field} must be a list")))?;
    if list.len() > 10 {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "LimitExceededException".to_owned(),
            message: "an endpoint group has at most 10 endpoints".to_owned(),
        });
    }
    let mut out = Vec::new();
    for endpoint in list {
        out.push(EndpointSpec {
            id: string(endpoint, "EndpointId")?.to_owned(),
            weight: u8::try_from(int_in(endpoint, "Weight", 0, 255)?.unwrap_or(128)).unwrap_or(128),
            client_ip_preservation: endpoint
                .get("ClientIPPreservationEnabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
    Ok(Some(out))
}

fn port_overrides(input: &Value) -> Result<Option<Vec<PortOverride>>, ApiError> {
    let Some(list) = input.get("PortOverrides") else {
        return Ok(None);
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::invalid("PortOverrides must be a list"))?;
    let mut out = Vec::new();
    for item in list {
        out.push(PortOverride {
            listener_port: port(
                int_in(item, "ListenerPort", 1, 65535)?
                    .ok_or_else(|| ApiError::invalid("ListenerPort is required"))?,
            ),
            endpoint_port: port(
                int_in(item, "EndpointPort", 1, 65535)?
                    .ok_or_else(|| ApiError::invalid("EndpointPort is required"))?,
            ),
        });
    }
    out.sort();
    Ok(Some(out))
}

/// Applies the health-check and dial fields of a request onto `spec`.
fn group_fields(input: &Value, spec: &mut EndpointGroupSpec) -> Result<(), ApiError> {
    if let Some(dial) = int_in(input, "TrafficDialPercentage", 0, 100)? {
        spec.traffic_dial = u8::try_from(dial).unwrap_or(100);
    }
    if let Some(port_number) = int_in(input, "HealthCheckPort", 1, 65535)? {
        spec.health_check.port = port(port_number);
    }
    if let Some(protocol) = one_of(input, "HealthCheckProtocol", &["TCP", "HTTP", "HTTPS"])? {
        spec.health_check.protocol = protocol.to_owned();
    }
    if let Some(interval) = int_in(input, "HealthCheckIntervalSeconds", 10, 30)? {
        if interval != 10 && interval != 30 {
            return Err(ApiError::invalid(format!(
                "HealthCheckIntervalSeconds must be 10 or 30, got {interval}"
            )));
        }
        spec.health_check.interval_seconds = u32::try_from(interval).unwrap_or(30);
    }
    if let Some(threshold) = int_in(input, "ThresholdCount", 1, 10)? {
        spec.health_check.threshold_count = u32::try_from(threshold).unwrap_or(3);
    }
    if let Some(path) = opt_str(input, "HealthCheckPath") {
        if !path.starts_with('/') || path.len() > 255 {
            return Err(ApiError::invalid(
                "HealthCheckPath must start with / and be at most 255 characters",
            ));
        }
        spec.health_check.path = Some(path.to_owned());
    }
    if spec.health_check.protocol == "TCP" {
        spec.health_check.path = None;
    } else if spec.health_check.path.is_none() {
        spec.health_check.path = Some("/".to_owned());
    }
    if let Some(overrides) = port_overrides(input)? {
        spec.port_overrides = overrides;
    }
    Ok(())
}

fn idempotency_token(input: &Value) -> Result<&str, ApiError> {
    let token = string(input, "IdempotencyToken")?;
    if token.is_empty() || token.len() > 255 {
        return Err(ApiError::invalid(
            "IdempotencyToken must be 1-255 characters",
        ));
    }
    Ok(token)
}

fn read_world(cloud: &SimCloud) -> Result<std::sync::Arc<World>, ApiError> {
    cloud
        .store()
        .read()
        .map_err(|e| ApiError::from(SimError::from(e)))
}

fn list_page(input: &Value) -> Result<(Option<usize>, Option<String>), ApiError> {
    let max = int_in(input, "MaxResults", 1, 100)?
        .map(|n| usize::try_from(n).unwrap_or(10))
        .or(Some(10));
    Ok((max, opt_str(input, "NextToken").map(str::to_owned)))
}

/// Serves one operation.
pub async fn dispatch(cloud: &SimCloud, operation: &str, input: &Value) -> Answer {
    match operation {
        "CreateAccelerator" => {
            let name = string(input, "Name")?;
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if !valid_name {
                return Err(ApiError::invalid(
                    "Name must be 1-64 letters, digits or hyphens, not starting or ending with a hyphen",
                ));
            }
            let ip_type =
                one_of(input, "IpAddressType", &["IPV4", "DUAL_STACK"])?.unwrap_or("IPV4");
            let enabled = input
                .get("Enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let token = idempotency_token(input)?;
            let arn = cloud
                .create_accelerator(name, ip_type, enabled, tags_of(input)?, Some(token))
                .await?;
            let world = read_world(cloud)?;
            let accelerator = world
                .accelerators
                .get(&arn)
                .cloned()
                .ok_or_else(|| ApiError::invalid("accelerator vanished"))?;
            Ok(
                json!({"Accelerator": accelerator_json(&AcceleratorView { status: World::accelerator_status(&accelerator).to_owned(), accelerator })}),
            )
        }
        "DescribeAccelerator" => Ok(
            json!({"Accelerator": accelerator_json(&cloud.describe_accelerator(string(input, "AcceleratorArn")?).await?)}),
        ),
        "ListAccelerators" => {
            let (max, token) = list_page(input)?;
            let page = cloud.list_accelerators(max, token.as_deref()).await?;
            let mut out = json!({"Accelerators": page.items.iter().map(accelerator_json).collect::<Vec<_>>()});
            if let Some(next) = page.next_token {
                out["NextToken"] = json!(next);
            }
            Ok(out)
        }
        "UpdateAccelerator" => {
            let arn = string(input, "AcceleratorArn")?;
            let current: Accelerator = read_world(cloud)?
                .accelerators
                .get(arn)
                .cloned()
                .ok_or_else(|| ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "AcceleratorNotFoundException".to_owned(),
                    message: format!("Accelerator {arn} was not found"),
                })?;
            let name = opt_str(input, "Name").unwrap_or(&current.name).to_owned();
            let ip_type = one_of(input, "IpAddressType", &["IPV4", "DUAL_STACK"])?
                .unwrap_or(&current.ip_address_type)
                .to_owned();
            let enabled = input
                .get("Enabled")
                .and_then(Value::as_bool)
                .unwrap_or(current.enabled);
            cloud
                .update_accelerator(arn, &name, &ip_type, enabled)
                .await?;
            Ok(json!({"Accelerator": accelerator_json(&cloud_view(cloud, arn)?)}))
        }
        "DeleteAccelerator" => {
            cloud
                .delete_accelerator(string(input, "AcceleratorArn")?)
                .await?;
            Ok(json!({}))
        }
        "DescribeAcceleratorAttributes" => {
            let logs = cloud
                .describe_accelerator_attributes(string(input, "AcceleratorArn")?)
                .await?;
            Ok(json!({"AcceleratorAttributes": attributes_json(&logs)}))
        }
        "UpdateAcceleratorAttributes" => {
            let logs = cloud
                .update_accelerator_attributes(
                    string(input, "AcceleratorArn")?,
                    input.get("FlowLogsEnabled").and_then(Value::as_bool),
                    opt_str(input, "FlowLogsS3Bucket").map(str::to_owned),
                    opt_str(input, "FlowLogsS3Prefix").map(str::to_owned),
                )
                .await?;
            Ok(json!({"AcceleratorAttributes": attributes_json(&logs)}))
        }
        "TagResource" => {
            let tags = tags_of(input)?;
            if tags.is_empty() {
                return Err(ApiError::invalid("Tags is required"));
            }
            cloud
                .tag_resource(string(input, "ResourceArn")?, tags, Vec::new())
                .await?;
            Ok(json!({}))
        }
        "UntagResource" => {
            let keys: Vec<String> = input
                .get("TagKeys")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::invalid("TagKeys is required"))?
                .iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect();
            cloud
                .tag_resource(string(input, "ResourceArn")?, BTreeMap::new(), keys)
                .await?;
            Ok(json!({}))
        }
        "ListTagsForResource" => {
            let tags = cloud.list_tags(string(input, "ResourceArn")?).await?;
            Ok(
                json!({"Tags": tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>()}),
            )
        }
        "CreateListener" => {
            let accelerator = string(input, "AcceleratorArn")?;
            let ranges =
                port_ranges(input)?.ok_or_else(|| ApiError::invalid("PortRanges is required"))?;
            let protocol = one_of(input, "Protocol", &["TCP", "UDP"])?
                .ok_or_else(|| ApiError::invalid("Protocol is required"))?;
            let affinity =
                one_of(input, "ClientAffinity", &["NONE", "SOURCE_IP"])?.unwrap_or("NONE");
            let token = idempotency_token(input)?;
            let spec = ListenerSpec {
                protocol: protocol.to_owned(),
                port_ranges: ranges,
                client_affinity: affinity.to_owned(),
            };
            let arn = cloud
                .create_listener(accelerator, &spec, Some(token))
                .await?;
            let listener = read_world(cloud)?
                .listeners
                .get(&arn)
                .cloned()
                .ok_or_else(|| ApiError::invalid("listener vanished"))?;
            Ok(json!({"Listener": listener_json(&listener)}))
        }
        "DescribeListener" => Ok(
            json!({"Listener": listener_json(&cloud.describe_listener(string(input, "ListenerArn")?).await?)}),
        ),
        "ListListeners" => {
            let (max, token) = list_page(input)?;
            let page = cloud
                .list_listeners(string(input, "AcceleratorArn")?, max, token.as_deref())
                .await?;
            let mut out =
                json!({"Listeners": page.items.iter().map(listener_json).collect::<Vec<_>>()});
            if let Some(next) = page.next_token {
                out["NextToken"] = json!(next);
            }
            Ok(out)
        }
        "UpdateListener" => {
            let arn = string(input, "ListenerArn")?;
            let current = read_world(cloud)?
                .listeners
                .get(arn)
                .cloned()
                .ok_or_else(|| ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "ListenerNotFoundException".to_owned(),
                    message: format!("Listener {arn} was not found"),
                })?;
            let spec = ListenerSpec {
                protocol: one_of(input, "Protocol", &["TCP", "UDP"])?
                    .unwrap_or(&current.spec.protocol)
                    .to_owned(),
                port_ranges: port_ranges(input)?.unwrap_or(current.spec.port_ranges.clone()),
                client_affinity: one_of(input, "ClientAffinity", &["NONE", "SOURCE_IP"])?
                    .unwrap_or(&current.spec.client_affinity)
                    .to_owned(),
            };
            cloud.update_listener(arn, &spec).await?;
            let listener = read_world(cloud)?
                .listeners
                .get(arn)
                .cloned()
                .ok_or_else(|| ApiError::invalid("listener vanished"))?;
            Ok(json!({"Listener": listener_json(&listener)}))
        }
        "DeleteListener" => {
            cloud.delete_listener(string(input, "ListenerArn")?).await?;
            Ok(json!({}))
        }
        "CreateEndpointGroup" => {
            let listener_arn = string(input, "ListenerArn")?;
            let region = string(input, "EndpointGroupRegion")?;
            if !meridian_provider::regions::is_aws(region) {
                return Err(ApiError::invalid(format!(
                    "EndpointGroupRegion {region} is not a valid AWS Region"
                )));
            }
            let token = idempotency_token(input)?;
            let first_port = read_world(cloud)?
                .listeners
                .get(listener_arn)
                .and_then(|l| l.spec.port_ranges.first().map(|r| r.from))
                .unwrap_or(80);
            let mut spec = EndpointGroupSpec {
                region: region.to_owned(),
                traffic_dial: 100,
                health_check: GaHealthCheck {
                    protocol: "TCP".to_owned(),
                    port: first_port,
                    path: None,
                    interval_seconds: 30,
                    threshold_count: 3,
                },
                port_overrides: Vec::new(),
            };
            group_fields(input, &mut spec)?;
            let configured = endpoints(input, "EndpointConfigurations")?.unwrap_or_default();
            let arn = cloud
                .create_endpoint_group(listener_arn, &spec, &configured, Some(token))
                .await?;
            Ok(json!({"EndpointGroup": group_json(&group_view(cloud, &arn)?)}))
        }
        "DescribeEndpointGroup" => Ok(
            json!({"EndpointGroup": group_json(&cloud.describe_endpoint_group(string(input, "EndpointGroupArn")?).await?)}),
        ),
        "ListEndpointGroups" => {
            let (max, token) = list_page(input)?;
            let page = cloud
                .list_endpoint_groups(string(input, "ListenerArn")?, max, token.as_deref())
                .await?;
            let mut out =
                json!({"EndpointGroups": page.items.iter().map(group_json).collect::<Vec<_>>()});
            if let Some(next) = page.next_token {
                out["NextToken"] = json!(next);
            }
            Ok(out)
        }
        "UpdateEndpointGroup" => {
            let arn = string(input, "EndpointGroupArn")?;
            let mut spec = read_world(cloud)?
                .endpoint_groups
                .get(arn)
                .map(|g| g.spec.clone())
                .ok_or_else(|| ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "EndpointGroupNotFoundException".to_owned(),
                    message: format!("Endpoint group {arn} was not found"),
                })?;
            group_fields(input, &mut spec)?;
            let configured = endpoints(input, "EndpointConfigurations")?;
            cloud
                .update_endpoint_group(arn, &spec, configured.as_deref())
                .await?;
            Ok(json!({"EndpointGroup": group_json(&group_view(cloud, arn)?)}))
        }
        "DeleteEndpointGroup" => {
            cloud
                .delete_endpoint_group(string(input, "EndpointGroupArn")?)
                .await?;
            Ok(json!({}))
        }
        "AddEndpoints" => {
            let arn = string(input, "EndpointGroupArn")?;
            let configured = endpoints(input, "EndpointConfigurations")?
                .ok_or_else(|| ApiError::invalid("EndpointConfigurations is required"))?;
            cloud.add_endpoints(arn, &configured).await?;
            let view = group_view(cloud, arn)?;
            let descriptions = group_json(&view)["EndpointDescriptions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|d| configured.iter().any(|c| d["EndpointId"] == c.id.as_str()))
                .collect::<Vec<_>>();
            Ok(json!({"EndpointDescriptions": descriptions, "EndpointGroupArn": arn}))
        }
        "RemoveEndpoints" => {
            let arn = string(input, "EndpointGroupArn")?;
            let ids: Vec<String> = input
                .get("EndpointIdentifiers")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::invalid("EndpointIdentifiers is required"))?
                .iter()
                .map(|e| string(e, "EndpointId").map(str::to_owned))
                .collect::<Result<_, _>>()?;
            let present: Vec<String> = read_world(cloud)?
                .endpoint_groups
                .get(arn)
                .map(|g| g.endpoints.iter().map(|e| e.spec.id.clone()).collect())
                .unwrap_or_default();
            if let Some(missing) = ids.iter().find(|id| !present.contains(id))
                && read_world(cloud)?.endpoint_groups.contains_key(arn)
            {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "EndpointNotFoundException".to_owned(),
                    message: format!("Endpoint {missing} was not found in {arn}"),
                });
            }
            cloud.remove_endpoints(arn, &ids).await?;
            Ok(json!({}))
        }
        other => Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "UnknownOperationException".to_owned(),
            message: not_served(other),
        }),
    }
}

/// Why an operation is not served: the parts of the Global Accelerator API
/// outside standard accelerators are named as such.
fn not_served(operation: &str) -> String {
    let part = if operation.contains("CustomRouting") {
        Some("custom routing accelerators")
    } else if operation.contains("Byoip") {
        Some("bring-your-own-IP address ranges")
    } else if operation.contains("CrossAccount") {
        Some("cross-account attachments")
    } else {
        None
    };
    match part {
        Some(part) => format!(
            "{operation} belongs to {part}, which this sandbox does not serve: it serves the standard-accelerator API (accelerators and their attributes, listeners, endpoint groups, endpoints, tags)"
        ),
        None => format!(
            "{operation} is not an operation this sandbox serves: it serves the standard-accelerator API (accelerators and their attributes, listeners, endpoint groups, endpoints, tags)"
        ),
    }
}

fn attributes_json(logs: &meridian_sim::world::FlowLogs) -> Value {
    let mut out = json!({"FlowLogsEnabled": logs.enabled});
    if let Some(bucket) = &logs.s3_bucket {
        out["FlowLogsS3Bucket"] = json!(bucket);
    }
    if let Some(prefix) = &logs.s3_prefix {
        out["FlowLogsS3Prefix"] = json!(prefix);
    }
    out
}

fn cloud_view(cloud: &SimCloud, arn: &str) -> Result<AcceleratorView, ApiError> {
    let world = read_world(cloud)?;
    let accelerator = world
        .accelerators
        .get(arn)
        .cloned()
        .ok_or_else(|| ApiError::invalid("accelerator vanished"))?;
    Ok(AcceleratorView {
        status: World::accelerator_status(&accelerator).to_owned(),
        accelerator,
    })
}

fn group_view(cloud: &SimCloud, arn: &str) -> Result<EndpointGroupView, ApiError> {
    let world = read_world(cloud)?;
    let group = world
        .endpoint_groups
        .get(arn)
        .cloned()
        .ok_or_else(|| ApiError::invalid("endpoint group vanished"))?;
    Ok(EndpointGroupView {
        health: group
            .endpoints
            .iter()
            .map(|e| world.endpoint_health(&group.spec.region, e))
            .collect(),
        group,
    })
}

/// Serves one Global Accelerator request under a fresh request id: the
/// writes it makes are recorded in the history with it, and the answer
/// (an error too) names it in `x-amzn-RequestId`, as AWS's do.
pub(crate) async fn handle(
    State(cloud): State<SimCloud>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = crate::request_id();
    let mut response = answer(&cloud.with_request_id(&request_id), &headers, &body).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(crate::REQUEST_ID_HEADER, value);
    }
    response
}

async fn answer(cloud: &SimCloud, headers: &HeaderMap, body: &Bytes) -> Response {
    let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) else {
        return ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "UnknownOperationException".to_owned(),
            message: "missing X-Amz-Target header".to_owned(),
        }
        .into_response();
    };
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "UnknownOperationException".to_owned(),
            message: format!("unknown target {target}"),
        }
        .into_response();
    };
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(error) => {
                return ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "SerializationException".to_owned(),
                    message: error.to_string(),
                }
                .into_response();
            }
        }
    };
    tracing::debug!(%operation, "sandbox request");
    match dispatch(cloud, operation, &input).await {
        Ok(output) => {
            let mut response = (StatusCode::OK, output.to_string()).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            response
        }
        Err(error) => error.into_response(),
    }
}
