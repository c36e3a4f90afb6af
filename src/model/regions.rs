//! Region names each cloud accepts.
//!
//! Offline validation cannot ask the clouds, so the lists are kept here and
//! extended as the clouds open regions. An unknown region is an error with
//! the list of known ones, so a typo never reaches an API call.

/// AWS regions (commercial, GovCloud and China).
pub const AWS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Google Cloud regions.
pub const GCP: &[&str] = &[
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west10",
    "europe-west12",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "northamerica-south1",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
];

/// Whether `region` is an AWS region.
pub fn is_aws(region: &str) -> bool {
    AWS.contains(&region)
}

/// Whether `region` is a Google Cloud region.
pub fn is_gcp(region: &str) -> bool {
    GCP.contains(&region)
}

/// The region of a GCP zone (`europe-west1-b` → `europe-west1`).
pub fn gcp_zone_region(zone: &str) -> Option<&str> {
    let (region, suffix) = zone.rsplit_once('-')?;
    (suffix.len() == 1 && suffix.chars().all(|c| c.is_ascii_lowercase()) && is_gcp(region))
        .then_some(region)
}

/// Whether `region` matches a glob with `*` wildcards (`us-*`, `*-west-*`).
pub fn glob_matches(glob: &str, region: &str) -> bool {
    fn go(glob: &[u8], text: &[u8]) -> bool {
        match glob.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|i| go(rest, &text[i..])),
            Some((c, rest)) => text.first() == Some(c) && go(rest, &text[1..]),
        }
    }
    go(glob.as_bytes(), region.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("us-*", "us-east-1"));
        assert!(!glob_matches("us-*", "eu-central-1"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("*-west-*", "eu-west-1"));
        assert!(glob_matches("eu-central-1", "eu-central-1"));
        assert!(!glob_matches("eu-central-1", "eu-central-10"));
    }

    #[test]
    fn zones() {
        assert_eq!(gcp_zone_region("europe-west1-b"), Some("europe-west1"));
        assert_eq!(gcp_zone_region("europe-west1"), None);
        assert_eq!(gcp_zone_region("mars-north1-a"), None);
    }
}
