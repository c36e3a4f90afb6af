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

/// Whether `name` is a valid Compute Engine resource name (RFC 1035: a
/// lowercase letter, then up to 62 lowercase letters, digits or hyphens, not
/// ending in a hyphen).
pub fn valid_gcp_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

/// A backend group reference (a network endpoint group or instance group),
/// as written in desired state or returned by the Compute API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendGroup {
    /// The path relative to the project, e.g.
    /// `regions/europe-west1/networkEndpointGroups/app-eu`: the form
    /// meridian's addresses and values use.
    pub path: String,
    /// The project named by a `projects/PROJECT/` or URL prefix, if any.
    pub project: Option<String>,
    /// The group's region (a zone's region for zonal groups).
    pub region: String,
}

/// What a backend group may look like, for error messages.
pub const BACKEND_GROUP_FORMS: &str = "expected `regions/REGION/networkEndpointGroups/NAME`, `zones/ZONE/networkEndpointGroups/NAME` or `zones/ZONE/instanceGroups/NAME` (optionally prefixed by `projects/PROJECT/` or `https://www.googleapis.com/compute/v1/projects/PROJECT/`)";

/// Parses a backend group reference: a relative path, the same path under
/// `projects/PROJECT/`, or a full Compute API URL.
pub fn parse_backend_group(group: &str) -> Result<BackendGroup, String> {
    let allowed = BACKEND_GROUP_FORMS;
    let trimmed = group
        .strip_prefix("https://www.googleapis.com/compute/v1/")
        .or_else(|| group.strip_prefix("https://compute.googleapis.com/compute/v1/"))
        .unwrap_or(group);
    let (project, trimmed) = match trimmed.strip_prefix("projects/") {
        Some(rest) => match rest.split_once('/') {
            Some((project, path)) if !project.is_empty() => (Some(project.to_owned()), path),
            _ => return Err(format!("malformed backend group `{group}`: {allowed}")),
        },
        None => (None, trimmed),
    };
    let parts: Vec<&str> = trimmed.split('/').collect();
    let [scope, location, collection, name] = parts.as_slice() else {
        return Err(format!("malformed backend group `{group}`: {allowed}"));
    };
    if !valid_gcp_name(name) {
        return Err(format!(
            "malformed backend group `{group}`: the group name must be a lowercase name; {allowed}"
        ));
    }
    let region = match (*scope, *collection) {
        ("regions", "networkEndpointGroups") => {
            if !is_gcp(location) {
                return Err(format!(
                    "unknown Google Cloud region `{location}`; known regions: {}",
                    GCP.join(", ")
                ));
            }
            (*location).to_owned()
        }
        ("zones", "networkEndpointGroups" | "instanceGroups") => gcp_zone_region(location)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "unknown Google Cloud zone `{location}` (a zone is a known region plus `-a`..`-f`)"
                )
            })?,
        _ => return Err(format!("malformed backend group `{group}`: {allowed}")),
    };
    Ok(BackendGroup {
        path: trimmed.to_owned(),
        project,
        region,
    })
}

/// The region of a backend group reference, or what is allowed.
pub fn backend_group_region(group: &str) -> Result<String, String> {
    parse_backend_group(group).map(|g| g.region)
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
    fn backend_groups_in_every_form_name_one_path() {
        let relative = parse_backend_group("regions/europe-west1/networkEndpointGroups/app-eu")
            .expect("relative");
        assert_eq!(relative.project, None);
        assert_eq!(relative.region, "europe-west1");
        let prefixed =
            parse_backend_group("projects/p-1/regions/europe-west1/networkEndpointGroups/app-eu")
                .expect("prefixed");
        let url = parse_backend_group(
            "https://www.googleapis.com/compute/v1/projects/p-1/regions/europe-west1/networkEndpointGroups/app-eu",
        )
        .expect("url");
        assert_eq!(prefixed.path, relative.path);
        assert_eq!(url.path, relative.path);
        assert_eq!(url.project.as_deref(), Some("p-1"));
        assert_eq!(
            backend_group_region("projects/p-123456/zones/us-east1-b/instanceGroups/ig").as_deref(),
            Ok("us-east1")
        );
        assert!(backend_group_region("regions/europe-west9x/networkEndpointGroups/a").is_err());
        assert!(backend_group_region("app-eu").is_err());
        assert!(
            backend_group_region("projects//regions/europe-west1/networkEndpointGroups/a").is_err()
        );
    }

    #[test]
    fn zones() {
        assert_eq!(gcp_zone_region("europe-west1-b"), Some("europe-west1"));
        assert_eq!(gcp_zone_region("europe-west1"), None);
        assert_eq!(gcp_zone_region("mars-north1-a"), None);
    }
}
