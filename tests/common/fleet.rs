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

/// The fleet's desired state, with `dial(a, listener, region)` per group.
pub fn fleet_yaml(accelerators: usize, dial: impl Fn(usize, &str, &str) -> u8) -> String {
    let mut out = String::with_capacity(accelerators * 2_000);
    out.push_str("apiVersion: meridian.dev/v1alpha1\nkind: Provider\nmetadata: {name: aws-main}\nspec:\n  type: aws\n");
    for a in 0..accelerators {
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
