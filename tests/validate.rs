//! `meridian validate`: the example is valid, and every rule reports the
//! right file, line, column and field path, all errors at once.

mod common;

use common::{example_dir, meridian};

const PROVIDERS: &str = "apiVersion: meridian.dev/v1alpha1
kind: Provider
metadata: {name: aws}
spec: {type: aws}
---
apiVersion: meridian.dev/v1alpha1
kind: Provider
metadata: {name: gcp}
spec: {type: gcp, project: acme-prod-1}
---
";

const GA_HEAD: &str = "apiVersion: meridian.dev/v1alpha1
kind: GlobalAccelerator
metadata: {name: api}
spec:
  provider: aws
  listeners:
";

fn ga(listeners: &str) -> String {
    format!("{GA_HEAD}{listeners}")
}

fn endpoint(region: &str, n: usize) -> String {
    let marker = if n == 0 { "«" } else { "" };
    format!(
        "            {marker}- id: arn:aws:elasticloadbalancing:{region}:111122223333:loadbalancer/app/x/{n:04}\n"
    )
}

/// One invalid input: the document text with `«` where the error must point,
/// the field path and a phrase the message must contain.
struct Case {
    rule: &'static str,
    text: String,
    path: &'static str,
    phrase: &'static str,
}

fn case(
    rule: &'static str,
    text: impl Into<String>,
    path: &'static str,
    phrase: &'static str,
) -> Case {
    Case {
        rule,
        text: text.into(),
        path,
        phrase,
    }
}

fn cases() -> Vec<Case> {
    let many_endpoints: String = (0..11).map(|n| endpoint("us-east-1", n)).collect();
    let many_listeners: String = (0..11)
        .map(|n| {
            format!(
                "    {}- {{name: l{n}, protocol: TCP, portRanges: [{{from: {p}, to: {p}}}]}}\n",
                if n == 0 { "«" } else { "" },
                p = 1000 + n
            )
        })
        .collect();
    vec![
        case(
            "unknown field",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      «trafficDail: 50\n",
            ),
            "spec.listeners[0].trafficDail",
            "unknown field `trafficDail`",
        ),
        case(
            "unknown kind",
            "apiVersion: meridian.dev/v1alpha1\nkind: «GlobalAccelerater\nmetadata: {name: x}\nspec: {}\n",
            "kind",
            "unknown kind `GlobalAccelerater`",
        ),
        case(
            "wrong apiVersion",
            "apiVersion: «meridian.dev/v1\nkind: DataResidencyPolicy\nmetadata: {name: x}\nspec: {dataClassification: [pii], allowedRegions: [eu-west-1]}\n",
            "apiVersion",
            "must be one of: meridian.dev/v1alpha1",
        ),
        case(
            "missing required field",
            "apiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {name: api}\nspec:\n  «listeners: []\n",
            "spec.provider",
            "missing required field `provider`",
        ),
        case(
            "wrong type",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n          trafficDial: «high\n",
            ),
            "spec.listeners[0].endpointGroups[0].trafficDial",
            "expected an integer, got string \"high\"",
        ),
        case(
            "duplicate names per kind",
            "apiVersion: meridian.dev/v1alpha1\nkind: DataResidencyPolicy\nmetadata: {name: eu}\nspec: {dataClassification: [pii], allowedRegions: [eu-west-1]}\n---\napiVersion: meridian.dev/v1alpha1\nkind: DataResidencyPolicy\nmetadata: {name: «eu}\nspec: {dataClassification: [pii], allowedRegions: [eu-west-1]}\n",
            "metadata.name",
            "duplicate DataResidencyPolicy name `eu`",
        ),
        case(
            "dangling provider",
            "apiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {name: api}\nspec:\n  provider: «aws-east\n  listeners: [{name: h, protocol: TCP, portRanges: [{from: 443, to: 443}]}]\n",
            "spec.provider",
            "no Provider document named `aws-east`",
        ),
        case(
            "dangling health check",
            "apiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {name: app}\nspec:\n  provider: gcp\n  protocol: HTTPS\n  healthChecks: [«app-hc]\n",
            "spec.healthChecks[0]",
            "no HealthCheck document named `app-hc`",
        ),
        case(
            "dangling backend service",
            "apiVersion: meridian.dev/v1alpha1\nkind: UrlMap\nmetadata: {name: map}\nspec:\n  provider: gcp\n  defaultService: «app\n",
            "spec.defaultService",
            "no BackendService document named `app`",
        ),
        case(
            "traffic dial above 100",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n          trafficDial: «101\n",
            ),
            "spec.listeners[0].endpointGroups[0].trafficDial",
            "must be from 0 to 100, got 101",
        ),
        case(
            "endpoint weight above 255",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n          endpoints:\n            - id: i-0abc\n              weight: «256\n",
            ),
            "spec.listeners[0].endpointGroups[0].endpoints[0].weight",
            "must be from 0 to 255, got 256",
        ),
        case(
            "capacity scaler between 0 and 0.1",
            "apiVersion: meridian.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: hc}\nspec: {provider: gcp, type: TCP}\n---\napiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {name: app}\nspec:\n  provider: gcp\n  protocol: HTTPS\n  healthChecks: [hc]\n  backends:\n    - group: regions/europe-west1/networkEndpointGroups/app-eu\n      capacityScaler: «0.05\n",
            "spec.backends[0].capacityScaler",
            "must be 0 (drained) or from 0.1 to 1.0, got 0.05",
        ),
        case(
            "capacity scaler above 1",
            "apiVersion: meridian.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: hc}\nspec: {provider: gcp, type: TCP}\n---\napiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {name: app}\nspec:\n  provider: gcp\n  protocol: HTTPS\n  healthChecks: [hc]\n  backends:\n    - group: regions/europe-west1/networkEndpointGroups/app-eu\n      capacityScaler: «1.5\n",
            "spec.backends[0].capacityScaler",
            "got 1.5",
        ),
        case(
            "health-check interval not 10 or 30",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n          healthCheck: {protocol: TCP, intervalSeconds: «20}\n",
            ),
            "spec.listeners[0].endpointGroups[0].healthCheck.intervalSeconds",
            "must be 10 or 30, got 20",
        ),
        case(
            "threshold count above 10",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n          healthCheck:\n            thresholdCount: «11\n",
            ),
            "spec.listeners[0].endpointGroups[0].healthCheck.thresholdCount",
            "must be from 1 to 10, got 11",
        ),
        case(
            "port 0",
            ga("    - name: https\n      protocol: TCP\n      portRanges: [{from: «0, to: 443}]\n"),
            "spec.listeners[0].portRanges[0].from",
            "must be from 1 to 65535, got 0",
        ),
        case(
            "port above 65535",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: «70000}]\n",
            ),
            "spec.listeners[0].portRanges[0].to",
            "must be from 1 to 65535, got 70000",
        ),
        case(
            "overlapping port ranges",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 450}]\n    - name: alt\n      protocol: TCP\n      portRanges: [«{from: 445, to: 445}]\n",
            ),
            "spec.listeners[1].portRanges[0]",
            "overlap ports 443-450",
        ),
        case(
            "two endpoint groups for one region",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n        - region: «us-east-1\n",
            ),
            "spec.listeners[0].endpointGroups[1].region",
            "one endpoint group per region per listener",
        ),
        case(
            "more than 10 endpoints",
            ga(&format!(
                "    - name: https\n      protocol: TCP\n      portRanges: [{{from: 443, to: 443}}]\n      endpointGroups:\n        - region: us-east-1\n          endpoints:\n{many_endpoints}"
            )),
            "spec.listeners[0].endpointGroups[0].endpoints",
            "11 endpoints; an endpoint group of Application Load Balancers has at most 10 (an AWS limit that is not adjustable)",
        ),
        case(
            "more than 10 listeners",
            format!("{GA_HEAD}{many_listeners}"),
            "spec.listeners",
            "11 listeners; provider `aws` allows 10 per accelerator",
        ),
        case(
            "AWS region name",
            ga(
                "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: «us-east-9\n",
            ),
            "spec.listeners[0].endpointGroups[0].region",
            "unknown AWS region `us-east-9`",
        ),
        case(
            "GCP region name",
            "apiVersion: meridian.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: hc}\nspec: {provider: gcp, type: TCP}\n---\napiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {name: app}\nspec:\n  provider: gcp\n  protocol: HTTPS\n  healthChecks: [hc]\n  backends:\n    - group: «regions/eu-central-1/networkEndpointGroups/app-eu\n",
            "spec.backends[0].group",
            "unknown Google Cloud region `eu-central-1`",
        ),
        case(
            "malformed YAML",
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: x\nspec«: {type: aws}\n",
            "",
            "malformed YAML",
        ),
        case(
            "duplicate YAML key",
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: x}\nspec: {type: aws}\n«spec: {type: aws}\n",
            "",
            "duplicate key `spec`",
        ),
        case(
            "missing kind",
            "«apiVersion: meridian.dev/v1alpha1\nmetadata: {name: x}\nspec: {}\n",
            "kind",
            "missing required field `kind`",
        ),
        case(
            "provider type cannot manage kind",
            "apiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {name: api}\nspec:\n  provider: «gcp\n  listeners: [{name: h, protocol: TCP, portRanges: [{from: 443, to: 443}]}]\n",
            "spec.provider",
            "cannot manage this kind",
        ),
        case(
            "credentials in Git",
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec:\n  type: aws\n  «secretAccessKey: abc\n",
            "spec.secretAccessKey",
            "credentials never belong in Git",
        ),
        case(
            "invalid name",
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: «Prod_AWS}\nspec: {type: aws}\n",
            "metadata.name",
            "not a valid name",
        ),
        case(
            "a region on a provider, which nothing would use",
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec:\n  type: aws\n  region: «us-west-2\n",
            "spec.region",
            "Global Accelerator's API is served only from us-west-2",
        ),
        case(
            "a quota below the AWS default",
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: p}\nspec:\n  type: aws\n  quotas: {endpointsPerGroup: «5}\n",
            "spec.quotas.endpointsPerGroup",
            "must be from 10 to 1000, got 5",
        ),
        case(
            "quotas on a gcp provider",
            "apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: g}\nspec:\n  type: gcp\n  project: acme-prod-2\n  quotas: «{endpointsPerGroup: 20}\n",
            "spec.quotas",
            "a gcp provider has none to declare",
        ),
        case(
            "a backend group of another project",
            "apiVersion: meridian.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: hc}\nspec: {provider: gcp, type: TCP}\n---\napiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {name: app}\nspec:\n  provider: gcp\n  protocol: HTTPS\n  healthChecks: [hc]\n  backends:\n    - group: «projects/other-proj-1/regions/europe-west1/networkEndpointGroups/app-eu\n",
            "spec.backends[0].group",
            "is in project `other-proj-1`, but provider `gcp` manages project `acme-prod-1`",
        ),
        case(
            "invalid CIDR",
            "apiVersion: meridian.dev/v1alpha1\nkind: TransitGatewayMesh\nmetadata: {name: core}\nspec:\n  provider: aws\n  gateways:\n    - region: us-east-1\n      cidrs: [«10.1.0.1/16]\n",
            "spec.gateways[0].cidrs[0]",
            "not an IPv4 CIDR block",
        ),
        case(
            "peering without gateway",
            "apiVersion: meridian.dev/v1alpha1\nkind: TransitGatewayMesh\nmetadata: {name: core}\nspec:\n  provider: aws\n  gateways: [{region: us-east-1}, {region: eu-central-1}]\n  peerings:\n    - {requester: us-east-1, accepter: «ap-southeast-1}\n",
            "spec.peerings[0].accepter",
            "no gateway in `ap-southeast-1`",
        ),
        case(
            "invalid cron",
            "apiVersion: meridian.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  selector: {kind: GlobalAccelerator}\n  denyWindows:\n    - {cron: «\"0 16 * FRI\", durationMinutes: 60}\n",
            "spec.denyWindows[0].cron",
            "not a five-field cron expression",
        ),
        case(
            "prometheus gate without a URL scheme",
            "apiVersion: meridian.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: p}\nspec:\n  selector: {kind: GlobalAccelerator}\n  healthGate:\n    prometheus: {url: «prometheus:9090, query: up, maxValue: 1}\n",
            "spec.healthGate.prometheus.url",
            "is not an http:// or https:// URL",
        ),
        case(
            "client region that is not a region glob",
            "apiVersion: meridian.dev/v1alpha1\nkind: DataResidencyPolicy\nmetadata: {name: us}\nspec: {dataClassification: [us-data], allowedRegions: [\"us-*\"], clientRegions: [«US_East]}\n",
            "spec.clientRegions[0]",
            "is not a region glob",
        ),
        case(
            "dangling path matcher",
            "apiVersion: meridian.dev/v1alpha1\nkind: HealthCheck\nmetadata: {name: hc}\nspec: {provider: gcp, type: TCP}\n---\napiVersion: meridian.dev/v1alpha1\nkind: BackendService\nmetadata: {name: app}\nspec: {provider: gcp, protocol: HTTPS, healthChecks: [hc]}\n---\napiVersion: meridian.dev/v1alpha1\nkind: UrlMap\nmetadata: {name: map}\nspec:\n  provider: gcp\n  defaultService: app\n  hostRules:\n    - hosts: [api.example.com]\n      pathMatcher: «apii\n",
            "spec.hostRules[0].pathMatcher",
            "no path matcher named `apii`",
        ),
        case(
            "wrong enum value",
            ga(
                "    - name: https\n      protocol: «HTTP\n      portRanges: [{from: 443, to: 443}]\n",
            ),
            "spec.listeners[0].protocol",
            "must be one of: TCP, UDP",
        ),
    ]
}

/// Writes the case (after the shared providers) and returns the expected line and column.
fn write_case(dir: &std::path::Path, text: &str) -> (usize, usize) {
    let full = format!("{PROVIDERS}{text}");
    let marker = full
        .find('«')
        .expect("every case marks its error position with «");
    let before = &full[..marker];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    std::fs::write(dir.join("case.yaml"), full.replace('«', "")).expect("write case");
    (line, col)
}

#[test]
fn the_example_desired_state_is_valid() {
    let run = meridian(&example_dir().join(".."), &["validate", "desired-state"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("are valid"), "{}", run.all());
}

#[test]
fn every_rule_reports_file_line_column_and_field() {
    let cases = cases();
    assert!(cases.len() >= 25, "the table covers at least 25 rules");
    let mut failures = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let (line, col) = write_case(dir.path(), &case.text);
        let run = meridian(dir.path(), &["validate", "."]);
        let location = format!("./case.yaml:{line}:{col}: ");
        let expected = if case.path.is_empty() {
            location.clone()
        } else {
            format!("{location}{}: ", case.path)
        };
        let found = run
            .stderr
            .lines()
            .any(|l| l.starts_with(&expected) && l.contains(case.phrase));
        if run.code != 1 || !found {
            failures.push(format!("rule `{}`: expected exit 1 and a line starting `{expected}` containing `{}`; got exit {}\n{}", case.rule, case.phrase, run.code, run.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_file_with_several_errors_reports_them_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{PROVIDERS}{}",
        ga(
            "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n          trafficDial: 101\n          endpoints:\n            - {id: i-0abc, weight: 300}\n        - region: mars-1\n          healthCheck: {intervalSeconds: 15}\n"
        )
    );
    std::fs::write(dir.path().join("many.yaml"), text).expect("write");
    std::fs::write(
        dir.path().join("other.yml"),
        "apiVersion: meridian.dev/v1alpha1\nkind: Nope\n",
    )
    .expect("write");
    let run = meridian(dir.path(), &["validate", "."]);
    assert_eq!(run.code, 1, "{}", run.all());
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("./")).collect();
    for expected in [
        "./many.yaml:22:24: spec.listeners[0].endpointGroups[0].trafficDial: must be from 0 to 100, got 101",
        "./many.yaml:24:36: spec.listeners[0].endpointGroups[0].endpoints[0].weight: must be from 0 to 255, got 300",
        // Semantic rules of the same document are still checked and reported.
        "./many.yaml:25:19: spec.listeners[0].endpointGroups[1].region: unknown AWS region `mars-1`",
        "./many.yaml:26:42: spec.listeners[0].endpointGroups[1].healthCheck.intervalSeconds: must be 10 or 30, got 15",
        "./other.yml:2:7: kind: unknown kind `Nope`",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "missing `{expected}` in\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("error(s); nothing was applied"),
        "{}",
        run.stderr
    );
}

#[test]
fn semantic_errors_are_all_reported_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "{PROVIDERS}{}",
        ga(
            "    - name: https\n      protocol: TCP\n      portRanges: [{from: 443, to: 443}]\n      endpointGroups:\n        - region: mars-1\n          healthCheck: {intervalSeconds: 15, thresholdCount: 0}\n        - region: mars-1\n"
        )
    );
    std::fs::write(dir.path().join("s.yaml"), text).expect("write");
    let run = meridian(dir.path(), &["validate", "."]);
    assert_eq!(run.code, 1, "{}", run.all());
    for phrase in [
        "unknown AWS region `mars-1`",
        "must be 10 or 30, got 15",
        "must be from 1 to 10, got 0",
        "a second endpoint group for mars-1",
    ] {
        assert!(
            run.stderr.contains(phrase),
            "missing `{phrase}` in\n{}",
            run.stderr
        );
    }
}

#[test]
fn an_empty_folder_is_an_error_not_delete_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("README.md"), "not yaml").expect("write");
    let run = meridian(dir.path(), &["validate", "."]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("no desired-state documents found"),
        "{}",
        run.all()
    );
}
