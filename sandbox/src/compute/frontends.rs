//! Target HTTP(S) proxies and global forwarding rules on the wire, and the
//! aggregated lists (`projects/{project}/aggregated/{collection}`), which
//! `gcloud … list` uses.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::routing::{get, post};
use meridian_sim::cloud::paginate;
use meridian_sim::world::{FrontendKind, GcpFrontend};
use serde_json::{Map, Value};

use super::{
    Answer, Ctx, Fields, GoogleError, Kind, MAX_RESULTS, One, Query, Sandbox, api_link,
    backend_service_json, check_name, health_check_json, json_body, merge_patch, named_ref, put,
    relative, reply, stored_fingerprint, timestamp, url_map_json,
};

fn resource_kind(kind: FrontendKind) -> &'static str {
    match kind {
        FrontendKind::TargetHttpProxy => "compute#targetHttpProxy",
        FrontendKind::TargetHttpsProxy => "compute#targetHttpsProxy",
        FrontendKind::ForwardingRule => "compute#forwardingRule",
    }
}

/// A front-end object as the API shows it.
pub(super) fn frontend_json(ctx: &Ctx, f: &GcpFrontend) -> Value {
    let project = ctx.project.as_str();
    let mut out = Map::new();
    put(&mut out, "kind", resource_kind(f.kind));
    put(&mut out, "id", f.id.as_str());
    put(&mut out, "creationTimestamp", timestamp(f.created_ms));
    put(&mut out, "name", f.name.as_str());
    if !f.description.is_empty() {
        put(&mut out, "description", f.description.as_str());
    }
    put(
        &mut out,
        "selfLink",
        ctx.self_link(Kind::Frontend(f.kind), &f.name),
    );
    if let Some(map) = &f.url_map {
        put(
            &mut out,
            "urlMap",
            api_link(project, &format!("global/urlMaps/{map}")),
        );
    }
    if f.kind == FrontendKind::TargetHttpsProxy {
        put(
            &mut out,
            "sslCertificates",
            f.ssl_certificates
                .iter()
                .map(|c| api_link(project, c))
                .collect::<Vec<_>>(),
        );
    }
    if let Some(target) = &f.target {
        put(
            &mut out,
            "target",
            api_link(project, &format!("global/{target}")),
        );
    }
    if let Some(address) = &f.ip_address {
        put(&mut out, "IPAddress", address.as_str());
    }
    if let Some(protocol) = &f.ip_protocol {
        put(&mut out, "IPProtocol", protocol.as_str());
    }
    if let Some(ports) = &f.port_range {
        put(&mut out, "portRange", ports.as_str());
    }
    if let Some(scheme) = &f.load_balancing_scheme {
        put(&mut out, "loadBalancingScheme", scheme.as_str());
    }
    if f.kind == FrontendKind::ForwardingRule {
        if !f.labels.is_empty() {
            put(
                &mut out,
                "labels",
                f.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                    .collect::<Map<_, _>>(),
            );
        }
        put(&mut out, "labelFingerprint", wire(&f.fingerprint));
    }
    put(&mut out, "fingerprint", wire(&f.fingerprint));
    Value::Object(out)
}

fn wire(fingerprint: &str) -> String {
    meridian_sim::cloud::wire_fingerprint(fingerprint)
}

/// A front-end object from a request body (`name`, `kind`, `project` and
/// the server's fields are set by the caller or the cloud).
fn frontend_from(
    project: &str,
    kind: FrontendKind,
    value: &Value,
) -> Result<GcpFrontend, GoogleError> {
    let f = Fields::of(value, "resource")?;
    let url_map = match f.str("urlMap")? {
        Some(reference) => Some(named_ref(reference, project, &f.path("urlMap"), "urlMaps")?),
        None => None,
    };
    let ssl_certificates = if kind == FrontendKind::TargetHttpsProxy {
        let mut certificates = Vec::new();
        for (n, reference) in f.strings("sslCertificates")?.iter().enumerate() {
            let field = format!("{}[{n}]", f.path("sslCertificates"));
            certificates.push(relative(reference, project, &field)?.to_owned());
        }
        certificates
    } else {
        Vec::new()
    };
    let target = match f.str("target")? {
        Some(reference) => {
            let field = f.path("target");
            let path = relative(reference, project, &field)?;
            Some(path.strip_prefix("global/").unwrap_or(path).to_owned())
        }
        None => None,
    };
    let mut labels = std::collections::BTreeMap::new();
    if f.object("labels")?.is_some() {
        let given = value.get("labels").and_then(Value::as_object);
        for (key, label) in given.into_iter().flatten() {
            let Some(text) = label.as_str() else {
                return Err(GoogleError::invalid(format!(
                    "Invalid value for field 'resource.labels.{key}': {label}. Labels are strings."
                )));
            };
            labels.insert(key.clone(), text.to_owned());
        }
    }
    if kind != FrontendKind::ForwardingRule {
        for only_rules in ["target", "IPAddress", "portRange", "labels"] {
            if f.get(only_rules).is_some() {
                return Err(GoogleError::invalid(format!(
                    "Invalid value for field 'resource.{only_rules}': a {} has no such field.",
                    resource_kind(kind)
                )));
            }
        }
    }
    Ok(GcpFrontend {
        kind,
        project: project.to_owned(),
        id: String::new(),
        name: f.str("name")?.unwrap_or_default().to_owned(),
        description: f.str("description")?.unwrap_or_default().to_owned(),
        created_ms: 0,
        fingerprint: String::new(),
        url_map,
        ssl_certificates,
        target,
        ip_address: f.str("IPAddress")?.map(str::to_owned),
        ip_protocol: f
            .one_of(
                "IPProtocol",
                &["TCP", "UDP", "ESP", "AH", "SCTP", "ICMP", "L3_DEFAULT"],
            )?
            .map(str::to_owned),
        port_range: f.str("portRange")?.map(str::to_owned),
        load_balancing_scheme: f.str("loadBalancingScheme")?.map(str::to_owned),
        labels,
    })
}

/// `maxResults` and `pageToken` of a list call, checked as GCP checks them.
pub(super) fn page_params(uri: &Uri) -> Result<(Option<usize>, Option<String>), GoogleError> {
    let query = Query::of(uri);
    for unsupported in ["filter", "orderBy"] {
        if let Some(value) = query.get(unsupported) {
            return Err(GoogleError::invalid(format!(
                "Invalid value for parameter '{unsupported}': '{value}'. The sandbox does not filter or sort lists."
            )));
        }
    }
    let max = match query.get("maxResults") {
        None => None,
        Some(text) => match text.parse::<usize>() {
            Ok(0) => None,
            Ok(n) if n <= MAX_RESULTS => Some(n),
            _ => {
                return Err(GoogleError::invalid(format!(
                    "Invalid value for field 'maxResults': '{text}'. Must be less than or equal to {MAX_RESULTS}"
                )));
            }
        },
    };
    Ok((max, query.get("pageToken").map(str::to_owned)))
}

pub(super) async fn list(sandbox: &Sandbox, kind: FrontendKind, ctx: &Ctx, uri: &Uri) -> Answer {
    let (max, token) = page_params(uri)?;
    let page = sandbox
        .cloud
        .list_frontends(kind, &ctx.project, max, token.as_deref(), Some(MAX_RESULTS))
        .await?;
    let items: Vec<Value> = page.items.iter().map(|f| frontend_json(ctx, f)).collect();
    let list_kind = match kind {
        FrontendKind::TargetHttpProxy => "compute#targetHttpProxyList",
        FrontendKind::TargetHttpsProxy => "compute#targetHttpsProxyList",
        FrontendKind::ForwardingRule => "compute#forwardingRuleList",
    };
    let mut out = Map::new();
    put(&mut out, "kind", list_kind);
    put(
        &mut out,
        "id",
        format!("projects/{}/global/{}", ctx.project, kind.collection()),
    );
    if !items.is_empty() {
        put(&mut out, "items", items);
    }
    if let Some(next) = page.next_token {
        put(&mut out, "nextPageToken", next);
    }
    put(
        &mut out,
        "selfLink",
        format!("{}/{}", ctx.base(), kind.collection()),
    );
    Ok(Value::Object(out))
}

/// `{collection}.aggregatedList`: the global objects under the scope
/// `global` (the sandbox has no regional ones).
async fn aggregated(sandbox: &Sandbox, kind: Kind, ctx: &Ctx, uri: &Uri) -> Answer {
    let (max, token) = page_params(uri)?;
    let operation = format!("{}.aggregatedList", kind.api());
    let project = ctx.project.as_str();
    let page = sandbox
        .cloud
        .count_call(&operation, false, |world| {
            let all: Vec<(String, Value)> = match kind {
                Kind::HealthCheck => world
                    .health_checks
                    .values()
                    .filter(|h| h.spec.project == project)
                    .map(|h| (h.name.clone(), health_check_json(ctx, h)))
                    .collect(),
                Kind::BackendService => world
                    .backend_services
                    .values()
                    .filter(|s| s.spec.project == project)
                    .map(|s| (s.name.clone(), backend_service_json(ctx, s)))
                    .collect(),
                Kind::UrlMap => world
                    .url_maps
                    .values()
                    .filter(|m| m.spec.project == project)
                    .map(|m| (m.name.clone(), url_map_json(ctx, m)))
                    .collect(),
                Kind::Frontend(f) => world
                    .frontends
                    .values()
                    .filter(|o| o.project == project && o.kind == f)
                    .map(|o| (o.name.clone(), frontend_json(ctx, o)))
                    .collect(),
            };
            paginate(
                &operation,
                all,
                |(name, _)| name.clone(),
                max,
                token.as_deref(),
                MAX_RESULTS,
            )
        })
        .await?;
    let collection = kind.collection();
    let list_kind = match kind {
        Kind::HealthCheck => "compute#healthChecksAggregatedList",
        Kind::BackendService => "compute#backendServiceAggregatedList",
        Kind::UrlMap => "compute#urlMapsAggregatedList",
        Kind::Frontend(FrontendKind::TargetHttpProxy) => "compute#targetHttpProxyAggregatedList",
        Kind::Frontend(_) => "compute#targetHttpsProxyAggregatedList",
    };
    let items: Vec<Value> = page.items.into_iter().map(|(_, v)| v).collect();
    let mut scope = Map::new();
    if items.is_empty() {
        put(
            &mut scope,
            "warning",
            serde_json::json!({
                "code": "NO_RESULTS_ON_PAGE",
                "message": "There are no results for scope 'global' on this page.",
                "data": [{"key": "scope", "value": "global"}],
            }),
        );
    } else {
        put(&mut scope, collection, items);
    }
    let mut scopes = Map::new();
    scopes.insert("global".to_owned(), Value::Object(scope));
    let mut out = Map::new();
    put(&mut out, "kind", list_kind);
    put(
        &mut out,
        "id",
        format!("projects/{project}/aggregated/{collection}"),
    );
    put(&mut out, "items", Value::Object(scopes));
    if let Some(next) = page.next_token {
        put(&mut out, "nextPageToken", next);
    }
    put(
        &mut out,
        "selfLink",
        format!(
            "http://{}/compute/v1/projects/{project}/aggregated/{collection}",
            ctx.host
        ),
    );
    Ok(Value::Object(out))
}

pub(super) async fn get_one(
    sandbox: &Sandbox,
    kind: FrontendKind,
    ctx: &Ctx,
    name: &str,
) -> Answer {
    let found = sandbox.cloud.get_frontend(kind, &ctx.project, name).await?;
    Ok(frontend_json(ctx, &found))
}

pub(super) async fn insert(
    sandbox: &Sandbox,
    kind: FrontendKind,
    ctx: &Ctx,
    name: &str,
    request_id: Option<&str>,
    body: &Value,
) -> Answer {
    let new = frontend_from(&ctx.project, kind, body)?;
    check_name(name, "resource.name")?;
    let cloud = &sandbox.cloud;
    sandbox
        .write(
            ctx,
            Kind::Frontend(kind),
            "insert",
            name,
            request_id,
            async {
                let written = cloud.insert_frontend(new).await?;
                Ok(Some(written.id))
            },
        )
        .await
}

/// How a change builds the next object from the current one and the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// `PATCH`: the body merged over the current object.
    Patch,
    /// `setUrlMap {"urlMap"}`.
    SetUrlMap,
    /// `setSslCertificates {"sslCertificates"}`.
    SetSslCertificates,
    /// `setTarget {"target"}`.
    SetTarget,
    /// `setLabels {"labels", "labelFingerprint"}`.
    SetLabels,
}

impl Change {
    fn verb(self) -> &'static str {
        match self {
            Change::Patch => "patch",
            Change::SetUrlMap => "setUrlMap",
            Change::SetSslCertificates => "setSslCertificates",
            Change::SetTarget => "setTarget",
            Change::SetLabels => "setLabels",
        }
    }
}

async fn modify(
    sandbox: &Sandbox,
    kind: FrontendKind,
    change: Change,
    ctx: &Ctx,
    name: &str,
    uri: &Uri,
    body: &Bytes,
) -> Answer {
    let query = Query::of(uri);
    let request_id = query.get("requestId");
    let sandbox = &sandbox.for_request(request_id);
    let operation = format!("{}.{}", kind.api(), change.verb());
    if let Some(known) = sandbox.replay(ctx, &operation, request_id).await? {
        return Ok(known);
    }
    let body = json_body(body)?;
    let fields = Fields::of(&body, "resource")?;
    if change == Change::Patch
        && let Some(given) = fields.str("name")?
        && given != name
    {
        return Err(GoogleError::invalid(format!(
            "Invalid value for field 'resource.name': '{given}'. The name cannot be changed (the URL names '{name}')."
        )));
    }
    let fingerprint_field = if change == Change::SetLabels {
        "labelFingerprint"
    } else {
        "fingerprint"
    };
    let fingerprint = match fields.str(fingerprint_field)? {
        None => None,
        Some(text) => Some(stored_fingerprint(text).ok_or_else(|| {
            GoogleError::invalid(format!(
                "Invalid value for field 'resource.{fingerprint_field}': '{text}'. Expected base64."
            ))
        })?),
    };
    // The one field a set-method carries, checked before anything runs.
    let (field, required) = match change {
        Change::Patch => ("", false),
        Change::SetUrlMap => ("urlMap", true),
        Change::SetSslCertificates => ("sslCertificates", true),
        Change::SetTarget => ("target", true),
        Change::SetLabels => ("labels", false),
    };
    if required && fields.get(field).is_none() {
        return Err(GoogleError::required(&format!("resource.{field}")));
    }
    let project = ctx.project.clone();
    let cloud = &sandbox.cloud;
    let shown_ctx = Ctx {
        host: sandbox.local.to_string(),
        project: project.clone(),
    };
    let verb = change.verb();
    sandbox
        .write(ctx, Kind::Frontend(kind), verb, name, request_id, async {
            let written = cloud
                .modify_frontend(
                    kind,
                    verb,
                    &project,
                    name,
                    fingerprint.as_deref(),
                    |current| {
                        let mut shown = frontend_json(&shown_ctx, current);
                        match change {
                            Change::Patch => merge_patch(&mut shown, &body),
                            Change::SetLabels => {
                                let labels = body.get("labels").cloned().unwrap_or(Value::Null);
                                if let Some(object) = shown.as_object_mut() {
                                    object.insert("labels".to_owned(), labels);
                                }
                            }
                            _ => {
                                if let (Some(object), Some(value)) =
                                    (shown.as_object_mut(), body.get(field))
                                {
                                    object.insert(field.to_owned(), value.clone());
                                }
                            }
                        }
                        frontend_from(&project, kind, &shown).map_err(|e| e.into_sim(&operation))
                    },
                )
                .await?;
            Ok(Some(written.id))
        })
        .await
}

/// Routes of the front-end collections and the aggregated lists.
pub(super) fn routes(router: Router<Sandbox>) -> Router<Sandbox> {
    let mut router = router;
    for kind in [
        Kind::HealthCheck,
        Kind::BackendService,
        Kind::UrlMap,
        Kind::Frontend(FrontendKind::TargetHttpProxy),
        Kind::Frontend(FrontendKind::TargetHttpsProxy),
    ] {
        router = router.route(
            &format!(
                "/compute/v1/projects/{{project}}/aggregated/{}",
                kind.collection()
            ),
            get(
                move |State(s): State<Sandbox>,
                      Path(project): Path<String>,
                      headers: HeaderMap,
                      uri: Uri| async move {
                    let ctx = Ctx::new(&s, &headers, project);
                    reply(aggregated(&s, kind, &ctx, &uri).await)
                },
            ),
        );
    }
    let sets: [(FrontendKind, &str, Change); 5] = [
        (
            FrontendKind::TargetHttpProxy,
            "/compute/v1/projects/{project}/targetHttpProxies/{name}/setUrlMap",
            Change::SetUrlMap,
        ),
        (
            FrontendKind::TargetHttpsProxy,
            "/compute/v1/projects/{project}/targetHttpsProxies/{name}/setUrlMap",
            Change::SetUrlMap,
        ),
        (
            FrontendKind::TargetHttpsProxy,
            "/compute/v1/projects/{project}/targetHttpsProxies/{name}/setSslCertificates",
            Change::SetSslCertificates,
        ),
        (
            FrontendKind::ForwardingRule,
            "/compute/v1/projects/{project}/global/forwardingRules/{name}/setTarget",
            Change::SetTarget,
        ),
        (
            FrontendKind::ForwardingRule,
            "/compute/v1/projects/{project}/global/forwardingRules/{name}/setLabels",
            Change::SetLabels,
        ),
    ];
    for (kind, path, change) in sets {
        router = router.route(
            path,
            post(
                move |State(s): State<Sandbox>,
                      Path((project, name)): One,
                      headers: HeaderMap,
                      uri: Uri,
                      body: Bytes| async move {
                    let ctx = Ctx::new(&s, &headers, project);
                    reply(modify(&s, kind, change, &ctx, &name, &uri, &body).await)
                },
            ),
        );
    }
    for kind in [
        FrontendKind::TargetHttpProxy,
        FrontendKind::TargetHttpsProxy,
        FrontendKind::ForwardingRule,
    ] {
        let item = format!(
            "/compute/v1/projects/{{project}}/global/{}/{{name}}",
            kind.collection()
        );
        router =
            router.route(
                &item,
                get(
                    move |State(s): State<Sandbox>,
                          Path((project, name)): One,
                          headers: HeaderMap| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(get_one(&s, kind, &ctx, &name).await)
                    },
                )
                .patch(
                    move |State(s): State<Sandbox>,
                          Path((project, name)): One,
                          headers: HeaderMap,
                          uri: Uri,
                          body: Bytes| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(modify(&s, kind, Change::Patch, &ctx, &name, &uri, &body).await)
                    },
                )
                .delete(
                    move |State(s): State<Sandbox>,
                          Path((project, name)): One,
                          headers: HeaderMap,
                          uri: Uri| async move {
                        let ctx = Ctx::new(&s, &headers, project);
                        reply(super::delete(&s, Kind::Frontend(kind), &ctx, &name, &uri).await)
                    },
                ),
            );
        router = router.route(
            &format!(
                "/compute/v1/projects/{{project}}/global/{}",
                kind.collection()
            ),
            get(
                move |State(s): State<Sandbox>,
                      Path(project): Path<String>,
                      headers: HeaderMap,
                      uri: Uri| async move {
                    let ctx = Ctx::new(&s, &headers, project);
                    reply(list(&s, kind, &ctx, &uri).await)
                },
            )
            .post(
                move |State(s): State<Sandbox>,
                      Path(project): Path<String>,
                      headers: HeaderMap,
                      uri: Uri,
                      body: Bytes| async move {
                    let ctx = Ctx::new(&s, &headers, project);
                    reply(super::insert(&s, Kind::Frontend(kind), &ctx, &uri, &body).await)
                },
            ),
        );
    }
    router
}
