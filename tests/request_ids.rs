//! Request ids, from both ends: the simulated cloud's history records the
//! request id of the call that made each write, as the client saw it (the
//! Global Accelerator and EC2 frontends' `x-amzn-RequestId` and
//! `<requestId>`, the Compute frontend's `requestId` parameter), and the
//! providers' write journal ([`meridian_provider::journal`]) names the same
//! ids, so an audit trail matches the cloud's record one to one.

use std::collections::BTreeMap;
use std::time::Duration;

use meridian_provider::journal::{WriteCall, recording};
use meridian_provider::units::UnitOfWork;
use meridian_provider::{
    AcceleratorSpec, Action, Address, ApplyRequest, Change, HealthCheckSpec, ListenerSpec,
    PortRange, Provider, Resource, RetryPolicy, RetryStats, TransitGatewaySpec,
};
use meridian_sandbox::InProcess;
use meridian_sim::world::{HistoryEntry, OperationFault};
use meridian_sim::{SimCloud, SimStore};
use serde_json::{Value, json};

/// A fresh simulated cloud served by an in-process sandbox.
async fn sandbox() -> (SimCloud, InProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cloud = SimCloud::new(SimStore::open(dir.path()).expect("store"));
    cloud
        .store()
        .transact(|world| {
            world.settings.deploy_delay_ms = 0;
            world.settings.peering_delay_ms = 0;
        })
        .expect("settings");
    let sandbox = InProcess::start(cloud.clone()).await.expect("sandbox");
    (cloud, sandbox, dir)
}

fn history(cloud: &SimCloud) -> Vec<HistoryEntry> {
    cloud.store().history().expect("history")
}

/// The history as (operation, request id) pairs.
fn stamped(history: &[HistoryEntry]) -> Vec<(String, Option<String>)> {
    history
        .iter()
        .map(|e| (e.operation.clone(), e.request_id.clone()))
        .collect()
}

fn header_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .expect("x-amzn-RequestId header")
        .to_owned()
}

/// One Global Accelerator call: status, `x-amzn-RequestId`, body.
async fn ga(sandbox: &InProcess, operation: &str, input: Value) -> (u16, String, Value) {
    let response = reqwest::Client::new()
        .post(sandbox.url())
        .header(
            "X-Amz-Target",
            format!("GlobalAccelerator_V20180706.{operation}"),
        )
        .header("Content-Type", "application/x-amz-json-1.1")
        .body(input.to_string())
        .send()
        .await
        .expect("GA call");
    let status = response.status().as_u16();
    let id = header_id(&response);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, id, body)
}

/// One EC2 Query call in us-east-1: status, `x-amzn-RequestId`, body.
async fn ec2(sandbox: &InProcess, form: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .post(sandbox.url())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=sandbox/20250101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(format!("{form}&Version=2016-11-15"))
        .send()
        .await
        .expect("EC2 call");
    let status = response.status().as_u16();
    let id = header_id(&response);
    (status, id, response.text().await.expect("body"))
}

fn between<'a>(document: &'a str, open: &str, close: &str) -> &'a str {
    let start = document.find(open).expect(open) + open.len();
    let end = document[start..].find(close).expect(close) + start;
    &document[start..end]
}

#[tokio::test]
async fn a_global_accelerator_write_is_recorded_under_the_request_id_of_its_answer() {
    let (cloud, sandbox, _dir) = sandbox().await;
    let (status, created, body) = ga(
        &sandbox,
        "CreateAccelerator",
        json!({"Name": "web", "IdempotencyToken": "t-1", "Enabled": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let accelerator = body["Accelerator"]["AcceleratorArn"].as_str().expect("arn");
    let (status, listened, body) = ga(
        &sandbox,
        "CreateListener",
        json!({"AcceleratorArn": accelerator, "Protocol": "TCP",
               "PortRanges": [{"FromPort": 80, "ToPort": 80}], "IdempotencyToken": "t-2"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listener = body["Listener"]["ListenerArn"].as_str().expect("arn");
    let (status, grouped, body) = ga(
        &sandbox,
        "CreateEndpointGroup",
        json!({"ListenerArn": listener, "EndpointGroupRegion": "us-east-1",
               "IdempotencyToken": "t-3"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let group = body["EndpointGroup"]["EndpointGroupArn"]
        .as_str()
        .expect("arn");
    let (status, updated, body) = ga(
        &sandbox,
        "UpdateEndpointGroup",
        json!({"EndpointGroupArn": group, "TrafficDialPercentage": 40}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A read answers with an id too, and records nothing.
    let (status, read, _) = ga(
        &sandbox,
        "DescribeEndpointGroup",
        json!({"EndpointGroupArn": group}),
    )
    .await;
    assert_eq!(status, 200);
    // So does an error, as AWS's do.
    let (status, refused, body) = ga(
        &sandbox,
        "UpdateEndpointGroup",
        json!({"EndpointGroupArn": format!("{group}-gone"), "TrafficDialPercentage": 40}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let ids = [&created, &listened, &grouped, &updated, &read, &refused];
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "one id per request: {ids:?}");
    assert_eq!(
        stamped(&history(&cloud)),
        [
            ("CreateAccelerator".to_owned(), Some(created)),
            ("CreateListener".to_owned(), Some(listened)),
            ("CreateEndpointGroup".to_owned(), Some(grouped)),
            ("UpdateEndpointGroup".to_owned(), Some(updated)),
        ]
    );
}

#[tokio::test]
async fn an_ec2_write_is_recorded_under_the_request_id_of_its_answer() {
    let (cloud, sandbox, _dir) = sandbox().await;
    let (status, header, body) =
        ec2(&sandbox, "Action=CreateTransitGateway&Description=mesh").await;
    assert_eq!(status, 200, "{body}");
    let created = between(&body, "<requestId>", "</requestId>").to_owned();
    assert_eq!(
        header, created,
        "the header names the request the body names"
    );
    let gateway = between(&body, "<transitGatewayId>", "</transitGatewayId>").to_owned();
    let (status, _, body) = ec2(
        &sandbox,
        &format!("Action=ModifyTransitGateway&TransitGatewayId={gateway}&Description=mesh2"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let modified = between(&body, "<requestId>", "</requestId>").to_owned();
    let (status, header, body) = ec2(
        &sandbox,
        "Action=ModifyTransitGateway&TransitGatewayId=tgw-0000000000000dead&Description=x",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(header, between(&body, "<RequestID>", "</RequestID>"));
    assert_ne!(created, modified);
    assert_eq!(
        stamped(&history(&cloud)),
        [
            ("CreateTransitGateway".to_owned(), Some(created)),
            ("ModifyTransitGateway".to_owned(), Some(modified)),
        ]
    );
}

#[tokio::test]
async fn a_compute_write_is_recorded_under_the_request_id_it_sent() {
    let (cloud, sandbox, _dir) = sandbox().await;
    let base = format!(
        "{}/compute/v1/projects/p/global/healthChecks",
        sandbox.url()
    );
    let client = reqwest::Client::new();
    let inserted = "4c1e8f55-0d3a-4f6e-8a11-2b7d9c0e5f01";
    let response = client
        .post(format!("{base}?requestId={inserted}"))
        .json(&json!({"name": "hc", "type": "TCP", "tcpHealthCheck": {"port": 80}}))
        .send()
        .await
        .expect("insert");
    assert_eq!(response.status().as_u16(), 200);
    let operation: Value = response.json().await.expect("operation");
    assert_eq!(operation["clientOperationId"], inserted);
    // A write without a requestId is recorded under one of the sandbox's.
    let response = client
        .patch(format!("{base}/hc"))
        .json(&json!({"checkIntervalSec": 10}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status().as_u16(), 200);
    let deleted = "9a0b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
    let response = client
        .delete(format!("{base}/hc?requestId={deleted}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status().as_u16(), 200);
    let history = history(&cloud);
    let operations: Vec<&str> = history.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(
        operations,
        [
            "healthChecks.insert",
            "healthChecks.patch",
            "healthChecks.delete"
        ]
    );
    assert_eq!(history[0].request_id.as_deref(), Some(inserted));
    let generated = history[1].request_id.as_deref().expect("a generated id");
    assert!(generated != inserted && generated != deleted, "{generated}");
    assert_eq!(history[2].request_id.as_deref(), Some(deleted));
}

// ----- the providers' journal against the same history -----------------------

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_wait: Duration::from_secs(30),
        max_poll: Duration::from_millis(50),
    }
}

async fn aws(sandbox: &InProcess) -> meridian_aws::AwsProvider {
    meridian_aws::AwsProvider::new(meridian_aws::AwsConfig {
        name: "aws".to_owned(),
        owner: "aws".to_owned(),
        profile: None,
        globalaccelerator_endpoint: Some(sandbox.url()),
        ec2_endpoint: Some(sandbox.url()),
        rate_limit: None,
        retry: quick_retries(),
        stats: RetryStats::default(),
    })
    .await
}

async fn gcp(sandbox: &InProcess) -> meridian_gcp::GcpProvider {
    meridian_gcp::GcpProvider::new(meridian_gcp::GcpConfig {
        name: "gcp".to_owned(),
        owner: "gcp".to_owned(),
        project: "p".to_owned(),
        endpoint: Some(sandbox.url()),
        rate_limit: None,
        retry: quick_retries(),
        stats: RetryStats::default(),
    })
    .await
    .expect("gcp provider")
}

/// A unit of work creating one object.
fn create(provider: &str, address: Address, after: Resource) -> ApplyRequest {
    ApplyRequest {
        unit: UnitOfWork {
            object: address.clone(),
            changes: vec![Change {
                provider: provider.to_owned(),
                address,
                action: Action::Create,
                wave: 0,
                before: None,
                after: Some(after),
                cloud_id: None,
                etag: None,
                fields: Vec::new(),
                reason: "test".to_owned(),
            }],
            members_after: None,
        },
    }
}

/// Applies `request` inside a journal recording: its results' errors and
/// the write calls made.
async fn apply(
    provider: &dyn Provider,
    request: ApplyRequest,
) -> (Vec<Option<String>>, Vec<WriteCall>) {
    let (response, calls) = recording(provider.apply(request)).await;
    let errors = response
        .results
        .into_iter()
        .map(|r| r.map(|e| e.to_string()))
        .collect();
    (errors, calls)
}

/// The journal's calls as (operation, request id, ok, error code).
fn journal(calls: &[WriteCall]) -> Vec<(&str, &str, bool, Option<&str>)> {
    calls
        .iter()
        .map(|c| {
            (
                c.operation.as_str(),
                c.request_id
                    .as_deref()
                    .expect("every write names its request"),
                c.ok,
                c.error.as_deref(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_aws_journal_names_the_request_ids_the_history_records() {
    let (cloud, sandbox, _dir) = sandbox().await;
    let provider = aws(&sandbox).await;
    let accelerator = Address::Accelerator {
        accelerator: "web".to_owned(),
    };
    let spec = AcceleratorSpec {
        name: "web".to_owned(),
        enabled: true,
        ip_address_type: "IPV4".to_owned(),
        tags: BTreeMap::new(),
        listener_names: BTreeMap::new(),
    };

    // The first attempt lands but its answer is lost (a 500): the retry
    // is answered from the idempotency token, and that answer is lost too.
    cloud
        .store()
        .transact(|world| world.settings.faults.lost_response_rate = 1.0)
        .expect("faults");
    let (errors, calls) = apply(
        &provider,
        create(
            "aws",
            accelerator.clone(),
            Resource::Accelerator(spec.clone()),
        ),
    )
    .await;
    assert!(errors[0].is_some(), "every answer was lost");
    let attempts = journal(&calls);
    assert_eq!(attempts.len(), 3, "each attempt is a call: {attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|(op, _, ok, error)| *op == "CreateAccelerator"
                && !ok
                && *error == Some("InternalServiceErrorException")),
        "{attempts:?}"
    );
    // The one write that landed is the first attempt's.
    let landed = history(&cloud);
    assert_eq!(
        stamped(&landed),
        [(
            "CreateAccelerator".to_owned(),
            Some(attempts[0].1.to_owned())
        )]
    );

    // Answers heard again: the create is a retry answered from its token
    // (no write lands), then a listener whose create the cloud refuses.
    cloud
        .store()
        .transact(|world| {
            world.settings.faults.lost_response_rate = 0.0;
            world.settings.faults.fail_operations = vec!["CreateListener".to_owned()];
        })
        .expect("faults");
    let (errors, calls) = apply(
        &provider,
        create("aws", accelerator.clone(), Resource::Accelerator(spec)),
    )
    .await;
    assert_eq!(errors, [None]);
    let created = journal(&calls);
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        (created[0].0, created[0].2, created[0].3),
        ("CreateAccelerator", true, None)
    );
    let listener = ListenerSpec {
        protocol: "TCP".to_owned(),
        port_ranges: vec![PortRange { from: 80, to: 80 }],
        client_affinity: "NONE".to_owned(),
    };
    let (errors, calls) = apply(
        &provider,
        create(
            "aws",
            Address::Listener {
                accelerator: "web".to_owned(),
                listener: "http".to_owned(),
            },
            Resource::Listener(listener),
        ),
    )
    .await;
    assert!(errors[0].is_some());
    let refused = journal(&calls);
    assert_eq!(refused.len(), 1, "a stalled error is not retried");
    assert_eq!(
        (refused[0].0, refused[0].2, refused[0].3),
        ("CreateListener", false, Some("InjectedFailure"))
    );

    // A Transit Gateway through EC2, created and waited for.
    let (errors, calls) = apply(
        &provider,
        create(
            "aws",
            Address::TransitGateway {
                mesh: "core".to_owned(),
                region: "us-east-1".to_owned(),
            },
            Resource::TransitGateway(TransitGatewaySpec {
                region: "us-east-1".to_owned(),
                amazon_side_asn: 64512,
                description: "core us-east-1".to_owned(),
            }),
        ),
    )
    .await;
    assert_eq!(errors, [None]);
    let gateway = journal(&calls);
    assert_eq!(gateway.len(), 1, "reads are never recorded: {gateway:?}");
    assert_eq!((gateway[0].0, gateway[0].2), ("CreateTransitGateway", true));

    // Every write that landed is in the journal under the id the history
    // records, and the history has nothing the journal lacks.
    let history = history(&cloud);
    assert_eq!(
        stamped(&history),
        [
            (
                "CreateAccelerator".to_owned(),
                Some(attempts[0].1.to_owned())
            ),
            (
                "CreateTransitGateway".to_owned(),
                Some(gateway[0].1.to_owned())
            ),
        ]
    );
    // The replayed create and the refused listener landed nothing.
    let recorded: Vec<&str> = history
        .iter()
        .filter_map(|e| e.request_id.as_deref())
        .collect();
    assert!(!recorded.contains(&created[0].1));
    assert!(!recorded.contains(&refused[0].1));
}

#[tokio::test]
async fn the_gcp_journal_names_the_request_ids_the_history_records() {
    let (cloud, sandbox, _dir) = sandbox().await;
    // The first insert's operation ends in an error and lands nothing; the
    // retry (a new round, a new request id) lands.
    cloud
        .store()
        .transact(|world| {
            world.settings.faults.operation_errors = vec![OperationFault {
                operation: "healthChecks.insert".to_owned(),
                code: "RESOURCE_NOT_READY".to_owned(),
                message: "not yet".to_owned(),
                times: 1,
            }];
        })
        .expect("faults");
    let provider = gcp(&sandbox).await;
    let spec = HealthCheckSpec {
        project: "p".to_owned(),
        check_type: "TCP".to_owned(),
        check_interval_sec: 5,
        timeout_sec: 5,
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        port: 80,
        request_path: None,
        host: None,
    };
    let (errors, calls) = apply(
        &provider,
        create(
            "gcp",
            Address::HealthCheck {
                name: "hc".to_owned(),
            },
            Resource::HealthCheck(spec),
        ),
    )
    .await;
    assert_eq!(errors, [None]);
    let writes = journal(&calls);
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(
        (writes[0].0, writes[0].2, writes[0].3),
        ("healthChecks.insert", false, Some("RESOURCE_NOT_READY"))
    );
    assert_eq!(
        (writes[1].0, writes[1].2, writes[1].3),
        ("healthChecks.insert", true, None)
    );
    assert_ne!(writes[0].1, writes[1].1, "each attempt has its own id");
    assert_eq!(
        stamped(&history(&cloud)),
        [(
            "healthChecks.insert".to_owned(),
            Some(writes[1].1.to_owned())
        )]
    );
}
