//! The reference fleet's desired state: A accelerators × 2 listeners × 3
//! endpoint groups × 4 endpoints (33·A objects; 16,500 at A = 500) with
//! one `Provider`. Shared by the fleet benchmark and the tests that apply
//! it.

#![allow(dead_code)]

/// The listeners of every accelerator, with their ports.
pub const LISTENERS: [(&str, u16); 2] = [("https", 443), ("grpc", 8443)];
/// The regions of every listener's endpoint groups.
pub const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
/// Endpoints per endpoint group.
pub const ENDPOINTS: usize = 4;

/// A Network Load Balancer's ARN in `region`.
pub fn endpoint_id(region: &str, name: &str) -> String {
    format!("arn:aws:elasticloadbalancing:{region}:111122223333:loadbalancer/net/{name}/0a1b2c3d")
}

/// Accelerators per file of [`fleet_files`]: about 2 MB of YAML, half the
/// 4 MiB a desired-state file may hold.
pub const PER_FILE: usize = 500;

/// The fleet's desired state in one file, with `dial(a, listener, region)`
/// per group.
pub fn fleet_yaml(accelerators: usize, dial: impl Fn(usize, &str, &str) -> u8) -> String {
    accelerators_yaml(0..accelerators, true, &dial)
}

/// The fleet's desired state as `(name, text)` files of [`PER_FILE`]
/// accelerators (the `Provider` in the first), as a fleet larger than one
/// file's limit is kept.
pub fn fleet_files(
    accelerators: usize,
    dial: impl Fn(usize, &str, &str) -> u8,
) -> Vec<(String, String)> {
    (0..accelerators.div_ceil(PER_FILE).max(1))
        .map(|n| {
            let range = n * PER_FILE..((n + 1) * PER_FILE).min(accelerators);
            (
                format!("fleet-{n:03}.yaml"),
                accelerators_yaml(range, n == 0, &dial),
            )
        })
        .collect()
}

fn accelerators_yaml(
    accelerators: std::ops::Range<usize>,
    provider: bool,
    dial: &impl Fn(usize, &str, &str) -> u8,
) -> String {
    let mut out = String::with_capacity(accelerators.len() * 4_000);
    if provider {
        out.push_str("apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n");
    }
    for a in accelerators {
        out.push_str(&format!(
            "---\napiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {{name: svc-{a:05}}}\nspec:\n  provider: aws-main\n  listeners:\n"
        ));
        for (listener, port) in LISTENERS {
            out.push_str(&format!(
                "    - name: {listener}\n      protocol: TCP\n      portRanges: [{{from: {port}, to: {port}}}]\n      endpointGroups:\n"
            ));
            for region in REGIONS {
                out.push_str(&format!(
                    "        - region: {region}\n          trafficDial: {}\n          endpoints:\n",
                    dial(a, listener, region)
                ));
                for e in 0..ENDPOINTS {
                    out.push_str(&format!(
                        "            - id: {}\n              weight: 128\n",
                        endpoint_id(region, &format!("s{a}-{listener}-{e}"))
                    ));
                }
            }
        }
    }
    out
}
