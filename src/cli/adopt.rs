//! `meridian import` and `meridian release`: bringing live objects under
//! meridian's management and letting them go, without touching their
//! configuration.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use meridian::exit;
use meridian_provider::{Address, DiscoverRequest, Family};

use super::*;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Desired-state directory, for its Provider documents.
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    /// The `Provider` document whose account or project is listed.
    #[arg(long)]
    pub provider: String,
    /// Only this kind: GlobalAccelerator, HealthCheck, BackendService,
    /// UrlMap or TransitGatewayMesh.
    #[arg(long, value_parser = ["GlobalAccelerator", "HealthCheck", "BackendService", "UrlMap", "TransitGatewayMesh"])]
    pub kind: Option<String>,
    /// Only objects with this cloud name.
    #[arg(long, conflicts_with_all = ["id", "tag"])]
    pub name: Option<String>,
    /// Only the object with this cloud identity (ARN, selfLink or name).
    #[arg(long, conflicts_with = "tag")]
    pub id: Option<String>,
    /// Only accelerators and transit gateways with this tag, `KEY=VALUE`.
    #[arg(long, value_parser = parse_tag)]
    pub tag: Option<(String, String)>,
    /// Write one file per object here (default: print every document).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

pub async fn import(cli: &Cli, args: &ImportArgs) -> Result<u8> {
    let Some(state) = load(&args.dir)? else {
        return Ok(exit::ERROR);
    };
    if state.provider(&args.provider).is_none() {
        let known: Vec<&str> = state.providers.iter().map(|p| p.name()).collect();
        eprintln!(
            "error: --provider: no Provider document `{}` in {} (there are: {})",
            args.provider,
            args.dir.display(),
            known.join(", ")
        );
        return Ok(exit::ERROR);
    }
    let providers = Providers::build(&state, &options(cli)).await?;
    let Some(provider) = providers.get(&args.provider) else {
        eprintln!("error: provider `{}` could not be set up", args.provider);
        return Ok(exit::ERROR);
    };
    let family = args.kind.as_deref().map(|k| match k {
        "GlobalAccelerator" => Family::GlobalAccelerator,
        "TransitGatewayMesh" => Family::TransitGateway,
        _ => Family::GcpLoadBalancing,
    });
    let discovered = match provider
        .discover(DiscoverRequest {
            family,
            name: args.name.clone(),
            id: args.id.clone(),
            tag: args.tag.clone(),
            regions: Vec::new(),
        })
        .await
    {
        Ok(found) => found,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(exit::ERROR);
        }
    };
    let (mut documents, mut notes) =
        meridian::import::documents(&args.provider, &discovered.objects);
    notes.extend(discovered.notes);
    if let Some(kind) = &args.kind {
        documents.retain(|d| d.id.starts_with(&format!("{kind}/")));
    }
    // A name already declared in the directory would clash.
    for doc in &documents {
        let (kind, name) = doc.id.split_once('/').unwrap_or_default();
        let clash = match kind {
            "GlobalAccelerator" => state.accelerator(name).is_some(),
            "BackendService" => state.backend_service(name).is_some(),
            "HealthCheck" => state.health_checks.iter().any(|d| d.name() == name),
            "TransitGatewayMesh" => state.meshes.iter().any(|d| d.name() == name),
            _ => state.url_maps.iter().any(|d| d.name() == name),
        };
        if clash {
            notes.push(format!(
                "{} is already declared in {}: rename one of them before adding this file",
                doc.id,
                args.dir.display()
            ));
        }
    }
    match &args.out {
        Some(out) => {
            std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
            for doc in &documents {
                let path = out.join(&doc.file);
                std::fs::write(&path, &doc.text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {} ({})", path.display(), doc.id);
            }
        }
        None => {
            for doc in &documents {
                print!("---\n{}", doc.text);
            }
        }
    }
    for note in &notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "{} document(s) for objects provider `{}` does not own. `meridian plan` adopts them (ownership marker only; nothing is created, deleted or replaced).",
        documents.len(),
        args.provider
    );
    Ok(exit::OK)
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The object: `GlobalAccelerator/NAME`, `BackendService/NAME`,
    /// `HealthCheck/NAME`, `UrlMap/NAME` or `TransitGatewayMesh/NAME` (its
    /// gateways and peerings).
    pub target: String,
    /// Desired-state directory holding its document.
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    /// Release a document that is not pinned by `meridian.dev/external-id`:
    /// until its removal lands, any apply or `meridian run` would create a
    /// new object in its place.
    #[arg(long)]
    pub force: bool,
    /// The state directory whose audit trail records the release's writes.
    #[arg(long, default_value = ".meridian-state")]
    pub state_dir: PathBuf,
    /// Record the writes in the audit trail the `meridian run --election`
    /// replicas keep in this etcd instead.
    #[arg(long, value_name = "URL", value_parser = meridian::daemon::election::EtcdTarget::parse)]
    pub election: Option<meridian::daemon::election::EtcdTarget>,
}

pub async fn release(cli: &Cli, args: &ReleaseArgs) -> Result<u8> {
    let Some(state) = load(&args.dir)? else {
        return Ok(exit::ERROR);
    };
    let Some((kind, name)) = args.target.split_once('/') else {
        eprintln!(
            "error: `{}` is not KIND/NAME (e.g. GlobalAccelerator/api)",
            args.target
        );
        return Ok(exit::ERROR);
    };
    let resources = meridian::desired::expand(&state);
    let (address, provider) = match kind {
        "TransitGatewayMesh" => (
            Address::TransitGateway {
                mesh: name.to_owned(),
                region: String::new(),
            },
            state
                .meshes
                .iter()
                .find(|d| d.name() == name)
                .map(|d| d.doc.spec.provider.clone()),
        ),
        "GlobalAccelerator" => (
            Address::Accelerator {
                accelerator: name.to_owned(),
            },
            state.accelerator(name).map(|d| d.doc.spec.provider.clone()),
        ),
        "BackendService" => (
            Address::BackendService {
                name: name.to_owned(),
            },
            state
                .backend_service(name)
                .map(|d| d.doc.spec.provider.clone()),
        ),
        "HealthCheck" => (
            Address::HealthCheck {
                name: name.to_owned(),
            },
            state
                .health_checks
                .iter()
                .find(|d| d.name() == name)
                .map(|d| d.doc.spec.provider.clone()),
        ),
        "UrlMap" => (
            Address::UrlMap {
                name: name.to_owned(),
            },
            state
                .url_maps
                .iter()
                .find(|d| d.name() == name)
                .map(|d| d.doc.spec.provider.clone()),
        ),
        other => {
            eprintln!(
                "error: `{other}` objects cannot be released: use GlobalAccelerator, BackendService, HealthCheck or UrlMap"
            );
            return Ok(exit::ERROR);
        }
    };
    let pinned = resources
        .iter()
        .any(|(a, d)| d.external_id.is_some() && (a == &address || matches!((a, &address), (Address::TransitGateway { mesh: m, .. }, Address::TransitGateway { mesh: n, .. }) if m == n)));
    if provider.is_some() && !pinned && !args.force {
        eprintln!(
            "error: {} is not pinned by meridian.dev/external-id: once released, its document (until removed) would have apply and `meridian run` create a new object beside it. Pin it first (`meridian import --id …` prints the pin), remove the document in the same change, or pass --force",
            args.target
        );
        return Ok(exit::ERROR);
    }
    let Some(provider) = provider else {
        eprintln!(
            "error: {} is not declared in {}: release names the document of the object to let go",
            args.target,
            args.dir.display()
        );
        return Ok(exit::ERROR);
    };
    let mut providers = Providers::build(&state, &options(cli)).await?;
    providers.audit = Some(std::sync::Arc::new(meridian::audit::AuditLog::new(
        audit_sink(&args.state_dir, args.election.as_ref()),
        meridian::audit::Context {
            trigger: meridian::audit::Trigger::Release,
            actor: meridian::audit::local_actor(),
            ..Default::default()
        },
    )));
    let Some(instance) = providers.get(&provider).cloned() else {
        eprintln!("error: provider `{provider}` could not be set up");
        return Ok(exit::ERROR);
    };
    // A mesh is released object by object: its gateways and peerings
    // carry tags each (routes carry none).
    let targets: Vec<Address> = match &address {
        Address::TransitGateway { mesh, .. } => resources
            .keys()
            .filter(|a| match a {
                Address::TransitGateway { mesh: m, .. } | Address::Peering { mesh: m, .. } => {
                    m == mesh
                }
                _ => false,
            })
            .cloned()
            .collect(),
        other => vec![other.clone()],
    };
    let mut released = Vec::new();
    for target in &targets {
        let change = meridian::audit::AuditChange {
            address: target.to_string(),
            action: "release".to_owned(),
            fields: Vec::new(),
        };
        match providers
            .audited(&provider, target, &[change], instance.release(target))
            .await
        {
            Ok(ids) => released.extend(ids),
            Err(error) => {
                eprintln!("error: {target}: {error}");
                if !released.is_empty() {
                    eprintln!(
                        "released so far: {}; run release again to finish",
                        released.join(", ")
                    );
                }
                return Ok(exit::ERROR);
            }
        }
    }
    println!(
        "Released {} (provider `{provider}`): {}. Its configuration is unchanged; meridian no longer observes, changes or deletes it.\nNow remove its document from {} (kept, it would be adopted again when pinned by meridian.dev/external-id, or created anew when not).",
        args.target,
        released.join(", "),
        args.dir.display()
    );
    Ok(exit::OK)
}
