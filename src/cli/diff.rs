//! `meridian diff`: the pull-request preview.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use meridian::desired;
use meridian::exit;
use meridian::model::{self, LoadError};
use meridian::plan::render::Format;
use meridian::rollout::{self, LedgerStore};

use super::*;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Repository: a local path or a URL (file://, git://, https://, ssh).
    #[arg(long)]
    pub repo: String,
    /// Base revision (the pull request's target).
    #[arg(long)]
    pub base: String,
    /// Head revision (the pull request's tip).
    #[arg(long)]
    pub head: String,
    /// Desired-state folder inside the repository.
    #[arg(long, default_value = "desired-state")]
    pub path: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Where remote repositories are mirrored.
    #[arg(long, default_value = ".meridian-state")]
    pub state_dir: PathBuf,
    #[command(flatten)]
    pub git: GitArgs,
    /// With --verify-signatures, the head revision (`head`) or every commit
    /// from the base to the head (`all`) must be signed by a trusted key;
    /// an untrusted head is not previewed (exit 3).
    #[command(flatten)]
    pub signatures: SignatureArgs,
}

pub async fn preview(cli: &Cli, args: &DiffArgs) -> Result<u8> {
    use meridian::source::{RepoSource, SourceError};
    // A folder that could leave the repository is refused before anything is read.
    meridian::source::folder_in_repository(&args.path)?;
    let source = RepoSource::open(&args.repo, &args.state_dir, args.git.auth())?;
    source.fetch_all()?;
    let base = source.resolve(&args.base)?;
    let head = source.resolve(&args.head)?;
    if let Some(policy) = args.signatures.policy()? {
        let now = meridian::clock::unix_seconds(std::time::SystemTime::now()) as i64;
        let checked = source.check_signatures(head, Some(base), &policy, now)?;
        match checked.verdict {
            meridian::source::signature::Verdict::Verified(signer) => {
                eprintln!(
                    "Revision {} is signed by {} ({}).",
                    &head.to_string()[..12],
                    signer.principal,
                    signer.fingerprint
                );
            }
            meridian::source::signature::Verdict::Refused(refusal) => {
                eprintln!(
                    "error: commit {} is refused ({}): {refusal}; it is not previewed",
                    &checked.commit[..checked.commit.len().min(12)],
                    refusal.reason()
                );
                return Ok(exit::BLOCKED);
            }
        }
    }
    // The base only gives the files' diff: a base without the folder, or
    // one meridian refuses to read (a pull request that repairs an invalid
    // revision), is compared as empty, with a note saying why.
    let mut base_notes = Vec::new();
    let base_snapshot = match source.snapshot(base, &args.path, true) {
        Ok(snapshot) => snapshot,
        Err(error) if error.invalid_revision() => {
            if !matches!(error, SourceError::PathMissing { .. }) {
                base_notes.push(format!(
                    "the base revision cannot be read ({error}); files are compared with an empty folder"
                ));
            }
            meridian::source::Snapshot {
                revision: base.to_string(),
                path: args.path.clone(),
                files: Vec::new(),
                notes: Vec::new(),
                digest: String::new(),
            }
        }
        Err(error) => return Err(error.into()),
    };
    let mut preview = meridian::preview::Preview {
        format_version: meridian::plan::FORMAT_VERSION,
        repository: source.display().to_owned(),
        base: base.to_string(),
        head: head.to_string(),
        path: args.path.clone(),
        files: Vec::new(),
        notes: Vec::new(),
        errors: Vec::new(),
        plan: None,
        traffic: Vec::new(),
    };
    let head_snapshot = match source.snapshot(head, &args.path, false) {
        Ok(snapshot) => snapshot,
        Err(error) if error.invalid_revision() => {
            preview.errors.push(error.to_string());
            print!("{}", meridian::preview::render(&preview, args.format));
            return Ok(exit::ERROR);
        }
        Err(error) => return Err(error.into()),
    };
    preview.files = meridian::preview::file_changes(&base_snapshot, &head_snapshot);
    preview.notes = base_notes;
    preview.notes.extend(head_snapshot.notes.iter().cloned());
    let state = match model::load(&head_snapshot.files) {
        Ok(state) => state,
        Err(LoadError::Invalid(diagnostics)) => {
            preview.errors = diagnostics.iter().map(ToString::to_string).collect();
            print!("{}", meridian::preview::render(&preview, args.format));
            return Ok(exit::ERROR);
        }
        Err(error) => return Err(error.into()),
    };
    let providers = Providers::build(&state, &options(cli)).await?;
    let resources = desired::expand(&state);
    // The preview's traffic shares need backend health.
    let observation = meridian::observe::observe_with(&providers, &resources, true).await;
    let mut plan = meridian::plan::make(&state, &resources, &observation, Some(head.to_string()));
    // The schedule and the invariants, as `plan` shows them (the ledger of
    // this machine's state directory, if any, for the anti-flap history).
    let ledger = LedgerStore::new(&args.state_dir).load().unwrap_or_default();
    rollout::annotate(
        &mut plan,
        &state,
        &resources,
        &observation,
        &ledger,
        std::time::SystemTime::now(),
        None,
    );
    preview.traffic = meridian::preview::traffic_impact(&state, &observation, &resources);
    let code = if plan.is_blocked() {
        exit::BLOCKED
    } else if plan.errored {
        exit::ERROR
    } else if plan.is_empty() {
        exit::OK
    } else {
        exit::CHANGES
    };
    preview.plan = Some(plan);
    print!("{}", meridian::preview::render(&preview, args.format));
    Ok(code)
}
