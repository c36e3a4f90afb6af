//! `meridian apply`: carry out a plan, step by step.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use meridian::desired;
use meridian::exit;
use meridian::plan::Plan;
use meridian::plan::file::PlanFile;
use meridian::plan::render::{self, Format};
use meridian::reconcile::{self, Checks};
use meridian::rollout::{self, LedgerStore};

use super::*;
use meridian::apply::{Outcome, Progress};
use meridian_provider::Change;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Desired-state directory.
    #[arg(default_value = "desired-state")]
    pub dir: PathBuf,
    /// Apply this saved plan instead of planning anew; refused when stale.
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// Apply as the leader of the `meridian run --election` replicas on
    /// this etcd (`etcd://HOST:PORT[/PREFIX]`): wait to be elected, keep the
    /// rollout ledger in etcd, fence every write, resign at the end. A
    /// deploy workflow shares the daemon's ledger this way.
    #[arg(long, value_name = "URL", value_parser = meridian::daemon::election::EtcdTarget::parse)]
    pub election: Option<meridian::daemon::election::EtcdTarget>,
    /// With --verify-signatures, DIR must be committed in its Git work
    /// tree and the work tree's HEAD signed by a trusted key (`head`; `all`
    /// needs a last applied revision and is for `meridian run`).
    #[command(flatten)]
    pub signatures: SignatureArgs,
}

/// Progress of an apply on the console. Up to [`render::LISTED`] changes,
/// a line per change; beyond that, a progress bar on a terminal and a line
/// every [`PROGRESS_EVERY`] otherwise (a failed change always gets its own
/// line), so that an apply of the whole fleet stays readable in a CI log.
pub struct ConsoleProgress {
    pub terminal: bool,
    large: std::sync::Mutex<Option<Large>>,
}

/// How often a large apply reports when stdout is not a terminal.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

struct Large {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    last_line: std::time::Instant,
    failed: usize,
}

impl ConsoleProgress {
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            large: std::sync::Mutex::new(None),
        }
    }

    fn large(&self, total: usize) -> Option<std::sync::MutexGuard<'_, Option<Large>>> {
        if total <= render::LISTED {
            return None;
        }
        let mut guard = self
            .large
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let now = std::time::Instant::now();
            let bar = self.terminal.then(|| {
                let bar = indicatif::ProgressBar::new(total as u64);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} changes · {per_sec} · about {eta} left",
                ) {
                    bar.set_style(style);
                }
                bar
            });
            println!(
                "Applying {total} changes; progress every {} s.",
                PROGRESS_EVERY.as_secs()
            );
            *guard = Some(Large {
                bar,
                started: now,
                last_line: now,
                failed: 0,
            });
        }
        Some(guard)
    }
}

impl Progress for ConsoleProgress {
    fn started(&self, change: &Change, index: usize, total: usize) {
        if self.large(total).is_some() {
            return;
        }
        if self.terminal {
            println!(
                "[{index}/{total}] {} {} ...",
                change.action.symbol(),
                change.address
            );
        }
    }

    fn finished(&self, outcome: &Outcome, done: usize, total: usize) {
        let change = outcome;
        if let Some(mut guard) = self.large(total)
            && let Some(large) = guard.as_mut()
        {
            if let Some(error) = &outcome.error {
                large.failed += 1;
                let line = format!(
                    "[{done}/{total}] {} {}: FAILED: {error}",
                    change.action.symbol(),
                    change.address
                );
                match &large.bar {
                    Some(bar) => bar.println(line),
                    None => println!("{line}"),
                }
            }
            match &large.bar {
                Some(bar) => {
                    bar.set_position(done as u64);
                    if done == total {
                        bar.finish_and_clear();
                    }
                }
                None => {
                    let now = std::time::Instant::now();
                    if done == total || now.duration_since(large.last_line) >= PROGRESS_EVERY {
                        large.last_line = now;
                        let seconds = now.duration_since(large.started).as_secs_f64();
                        println!(
                            "[{done}/{total}] {:.0}% of the changes done in {seconds:.0} s ({:.0} per s), {} failed",
                            done as f64 * 100.0 / total as f64,
                            done as f64 / seconds.max(0.001),
                            large.failed
                        );
                    }
                }
            }
            let _ = std::io::stdout().flush();
            return;
        }
        match &outcome.error {
            None => println!(
                "[{done}/{total}] {} {}: done in {} ms",
                change.action.symbol(),
                change.address,
                outcome.elapsed.as_millis()
            ),
            Some(error) => println!(
                "[{done}/{total}] {} {}: FAILED: {error}",
                change.action.symbol(),
                change.address
            ),
        }
        let _ = std::io::stdout().flush();
    }
}

pub fn confirm(plan: &Plan) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply {} change(s) without confirmation: stdin is not a terminal; pass --yes",
            plan.changes.len()
        );
    }
    print!(
        "Apply these {} change(s)? Only `yes` is accepted: ",
        plan.changes.len()
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

pub async fn apply(cli: &Cli, args: &ApplyArgs) -> Result<u8> {
    use meridian::daemon::election::{Election, Timings};
    let Some(target) = args.election.clone() else {
        return apply_as(cli, args, None).await;
    };
    let identity = format!("apply-{}", std::process::id());
    let timings = Timings::default();
    let election = Election::new(target, identity, timings);
    let waited = std::time::Instant::now();
    while !election.is_leader() {
        election.round().await;
        if election.is_leader() {
            break;
        }
        if waited.elapsed() > timings.lease * 2 {
            let standing = election.standing();
            eprintln!(
                "error: not elected within {:?}: {}; nothing was applied",
                timings.lease * 2,
                match (standing.role, standing.leader) {
                    (meridian::daemon::election::Role::Unreachable, _) =>
                        "etcd cannot be reached".to_owned(),
                    (_, Some(leader)) =>
                        format!("`{leader}` leads (a `meridian run` replica or another apply)"),
                    _ => "another replica leads".to_owned(),
                }
            );
            return Ok(exit::ERROR);
        }
        tokio::time::sleep(timings.retry).await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewing = tokio::spawn(election.clone().campaign(stop.clone()));
    let result = apply_as(cli, args, Some(election.clone())).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    renewing.abort();
    let _ = renewing.await;
    election.resign().await;
    result
}

async fn apply_as(
    cli: &Cli,
    args: &ApplyArgs,
    election: Option<Arc<meridian::daemon::election::Election>>,
) -> Result<u8> {
    // With --verify-signatures, the folder must be what a trusted key
    // signed: committed, at a signed HEAD.
    let signed = match args.signatures.policy()? {
        None => None,
        Some(policy) if policy.mode == meridian::source::VerifyMode::All => {
            eprintln!(
                "error: apply checks the signature of the checkout's HEAD: use --verify-signatures (=head); `all` (every commit since the last applied revision) is for `meridian run`"
            );
            return Ok(exit::ERROR);
        }
        Some(policy) => {
            let now = meridian::clock::unix_seconds(std::time::SystemTime::now()) as i64;
            match meridian::source::check_folder(&args.dir, &policy, now) {
                Err(why) => {
                    eprintln!("error: {why}. Nothing was applied.");
                    return Ok(exit::BLOCKED);
                }
                Ok(folder) => match folder.checked.verdict {
                    meridian::source::signature::Verdict::Verified(signer) => {
                        let who = format!("{} ({})", signer.principal, signer.fingerprint);
                        println!("Revision {} is signed by {who}.", short(&folder.revision));
                        Some((folder.revision, folder.author, who, folder.files))
                    }
                    meridian::source::signature::Verdict::Refused(refusal) => {
                        eprintln!(
                            "error: revision {} is refused ({}): {refusal}. Nothing was applied.",
                            short(&folder.revision),
                            refusal.reason()
                        );
                        return Ok(exit::BLOCKED);
                    }
                },
            }
        }
    };
    // A saved plan carries the desired state it was made from: that, not
    // the folder as it is now, is what runs.
    let (state, saved) = match &args.plan {
        None => {
            // Signed: what the commit holds, read from Git, not the disk.
            let loaded = match &signed {
                Some((_, _, _, files)) => report(model::load_files_of(&args.dir, files.clone()))?,
                None => load(&args.dir)?,
            };
            let Some(state) = loaded else {
                return Ok(exit::ERROR);
            };
            (state, None)
        }
        Some(path) => {
            let file = match PlanFile::load(path) {
                Ok(file) => file,
                Err(error) => {
                    eprintln!("error: {error}. Nothing was applied.");
                    return Ok(exit::ERROR);
                }
            };
            let state = match model::load_allowing_empty(&file.files()) {
                Ok(state) if state.digest == file.plan.source.digest => state,
                Ok(_) | Err(_) => {
                    eprintln!(
                        "error: {} holds desired state that does not load as it did when the plan was made; nothing was applied. Run `meridian plan --out` again.",
                        path.display()
                    );
                    return Ok(exit::ERROR);
                }
            };
            if let Some((_, _, _, files)) = &signed
                && model::load_files_of(&args.dir, files.clone())
                    .map_or(true, |committed| committed.digest != state.digest)
            {
                eprintln!(
                    "error: {} holds other desired state than the signed commit in {}; with --verify-signatures only what was signed is applied. Nothing was applied.",
                    path.display(),
                    args.dir.display()
                );
                return Ok(exit::BLOCKED);
            }
            if let Ok(current) = model::load_dir(&args.dir)
                && current.digest != state.digest
            {
                eprintln!(
                    "note: desired state in {} changed since the plan was saved ({} then, {} now); the saved plan runs as it was reviewed, the edits do not. Plan again to apply them.",
                    args.dir.display(),
                    short(&state.digest),
                    short(&current.digest)
                );
            }
            (state, Some(file.plan))
        }
    };
    let store = match &election {
        Some(election) => LedgerStore::shared(
            &args.rollout.state_dir,
            Arc::new(meridian::daemon::election::EtcdLedger(
                election.clone(),
                election.current_term().unwrap_or(0),
            )),
        ),
        None => LedgerStore::new(&args.rollout.state_dir),
    };
    let (mut providers, mut plan, ledger, observed, resources) = match saved {
        None => {
            let prepared = reconcile::prepare(
                &state,
                &options(cli),
                &store,
                &state.digest,
                None,
                Checks::Blocking {
                    deny_window_override: args.rollout.override_deny_window.as_deref(),
                },
                reconcile::Intent::Apply,
            )
            .await?;
            (
                prepared.providers,
                prepared.plan,
                prepared.ledger,
                Some(prepared.observation),
                prepared.desired,
            )
        }
        Some(plan) => (
            Providers::build(&state, &options(cli)).await?,
            plan,
            store.load()?,
            None,
            desired::expand(&state),
        ),
    };
    if let Some(failed) = ledger.failed.get(&state.digest) {
        eprintln!(
            "error: this desired state failed its gates at {}: {}. It is not applied again until it changes (a new commit) or `meridian retry`.",
            failed.at, failed.reason
        );
        return Ok(exit::ERROR);
    }
    let in_progress = ledger.current.as_ref().is_some_and(|r| {
        r.revision == state.digest
            && matches!(
                r.status,
                rollout::RolloutStatus::InProgress | rollout::RolloutStatus::RollingBack
            )
    });
    if in_progress {
        // The invariants were checked when this rollout started; from here
        // its gates govern and roll it back if health drops.
        plan.violations
            .retain(|v| !rollout::is_rollout_violation(v));
    }
    if plan.is_blocked() {
        print!("{}", render::plan(&plan, Format::Text, style()));
        print_violations(&plan);
        return Ok(exit::BLOCKED);
    }
    if plan.errored {
        print!("{}", render::plan(&plan, Format::Text, style()));
        eprintln!(
            "error: the live world was not fully observed or holds conflicting objects; nothing was applied."
        );
        return Ok(exit::ERROR);
    }
    if plan.is_empty() && !in_progress {
        match render::held_back_line(&plan) {
            Some(held) => println!("{held}\nNothing else to apply."),
            None => println!("No changes. The live world matches the desired state."),
        }
        return Ok(exit::OK);
    }
    print!("{}", render::plan(&plan, Format::Text, style()));
    // Without a question the first step runs on the observation it was
    // planned from (one observation per apply); after a human has taken
    // their time to answer, the world is observed again before writing.
    let observed = if args.yes || plan.is_empty() {
        observed
    } else {
        if !confirm(&plan)? {
            println!("Apply cancelled; nothing was changed.");
            return Ok(exit::ERROR);
        }
        None
    };
    let revision = state.digest.clone();
    let progress = ConsoleProgress::new(std::io::stdout().is_terminal());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "Stopping after the change(s) in flight; run `meridian apply` again to continue."
                );
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    // The plan shown (or saved and reviewed) is the plan carried out: its
    // steps, its values, nothing else. A step that no longer fits the live
    // world stops the apply before anything of it is written.
    let held = render::held_back_line(&plan);
    let plan_revision = plan.source.revision.clone();
    let options = rollout::RunOptions {
        wait: true,
        deny_window_override: args.rollout.override_deny_window.clone(),
        max_conflicts: 0,
        contract: Some(plan),
    };
    // Every write call lands in the audit trail: the daemon's, in etcd,
    // for a deploy job on the replicas' election; the state directory's
    // otherwise.
    let sink: Arc<dyn meridian::audit::AuditSink> = match &election {
        Some(e) => Arc::new(meridian::daemon::election::EtcdAudit(e.clone())),
        None => Arc::new(meridian::audit::FileSink::new(&args.rollout.state_dir)),
    };
    providers.audit = Some(Arc::new(meridian::audit::AuditLog::new(
        sink,
        meridian::audit::Context {
            revision: signed
                .as_ref()
                .map(|(revision, _, _, _)| revision.clone())
                .or_else(|| plan_revision.clone()),
            author: signed.as_ref().and_then(|(_, author, _, _)| author.clone()),
            signer: signed.as_ref().map(|(_, _, who, _)| who.clone()),
            trigger: meridian::audit::Trigger::Apply,
            actor: match &election {
                Some(e) => e.identity().to_owned(),
                None => meridian::audit::local_actor(),
            },
        },
    )));
    providers.fence = election.map(|e| {
        let term = e.current_term().unwrap_or(0);
        Arc::new(meridian::daemon::election::ElectionFence(e, term))
            as Arc<dyn meridian::providers::Fence>
    });
    let (end, outcomes) = rollout::run(
        &state,
        &resources,
        &revision,
        &providers,
        &store,
        &progress,
        &ConsoleRollout,
        &stop,
        &options,
        observed,
    )
    .await?;
    if let rollout::RunEnd::Stale(reason) = &end
        && outcomes.is_empty()
    {
        eprintln!(
            "error: the plan is stale: {reason}. Nothing was written; run `meridian plan` again."
        );
        return Ok(exit::ERROR);
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let applied = outcomes.len() - failed;
    if meridian::audit::lost_lines() > 0 {
        eprintln!(
            "warning: {} audit line(s) could not be written to {} (see the errors above); the writes they describe stand",
            meridian::audit::lost_lines(),
            providers
                .audit
                .as_ref()
                .map(|a| a.describe())
                .unwrap_or_default()
        );
    }
    let calls = providers.calls();
    let (reads, writes) = calls.values().flatten().fold((0, 0), |(r, w), c| {
        if c.write {
            (r, w + c.ok + c.failed)
        } else {
            (r + c.ok + c.failed, w)
        }
    });
    let steps = store
        .load()?
        .current
        .filter(|r| r.revision == revision)
        .map(|r| r.steps.len())
        .unwrap_or(0);
    let mut made: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for counter in calls.values().flatten().filter(|c| c.write && c.ok > 0) {
        *made.entry(counter.operation.as_str()).or_default() += counter.ok;
    }
    let made: Vec<String> = made.iter().map(|(op, n)| format!("{n} {op}")).collect();
    println!(
        "Applied {applied} of {} change(s){}; {} retries after transient errors, {} waits; {reads} read and {writes} write API calls{}.",
        outcomes.len(),
        if steps > 1 {
            format!(" in {steps} steps")
        } else {
            String::new()
        },
        providers.stats.retries(),
        providers.stats.waits(),
        if made.is_empty() {
            String::new()
        } else {
            format!(" (writes made: {})", made.join(", "))
        }
    );
    if let Some(held) = held {
        println!("{held}");
    }
    match end {
        rollout::RunEnd::Done => Ok(exit::OK),
        rollout::RunEnd::Failed(reason) => {
            eprintln!("error: the rollout failed: {reason}");
            Ok(exit::ERROR)
        }
        rollout::RunEnd::ApplyFailed(errors) => {
            for error in &errors {
                eprintln!("error: {error}");
            }
            if outcomes
                .iter()
                .any(|o| o.error.as_ref().is_some_and(|e| e.is_conflict()))
            {
                eprintln!(
                    "error: the live world changed after the plan was checked; nothing was overwritten. Run `meridian plan` again."
                );
            }
            eprintln!(
                "{} change(s) failed. What landed stays; run `meridian apply` again to continue from live state.",
                errors.len()
            );
            Ok(exit::ERROR)
        }
        rollout::RunEnd::Stale(reason) => {
            eprintln!(
                "error: the plan is stale: {reason}. Nothing of this step was written; run `meridian plan` again."
            );
            Ok(exit::ERROR)
        }
        rollout::RunEnd::Retry(reason) => {
            eprintln!(
                "Paused: {reason}. The rollout's position is saved; run `meridian apply` again later."
            );
            Ok(exit::ERROR)
        }
        rollout::RunEnd::Interrupted => {
            eprintln!(
                "Interrupted between steps; the rollout's position is saved in {}: run `meridian apply` again to continue.",
                args.rollout.state_dir.display()
            );
            Ok(exit::ERROR)
        }
        rollout::RunEnd::Waiting(_, reason) => {
            eprintln!(
                "Paused: {reason}. The rollout's position is saved; run `meridian apply` again once the window has closed (or override it with --override-deny-window \"<reason>\")."
            );
            Ok(exit::ERROR)
        }
    }
}

pub struct ConsoleRollout;

impl rollout::RolloutEvents for ConsoleRollout {
    fn step(&self, number: usize, rollback: bool, plan: &Plan) {
        let moves: Vec<String> = plan
            .changes
            .iter()
            .flat_map(|c| {
                c.fields
                    .iter()
                    .filter(|f| {
                        matches!(f.path.as_str(), "trafficDial" | "weight" | "capacityScaler")
                    })
                    .map(move |f| {
                        format!(
                            "{} {} {} → {}",
                            c.address,
                            f.path,
                            render::show_value(f.before.as_ref()),
                            render::show_value(f.after.as_ref())
                        )
                    })
            })
            .collect();
        println!(
            "{} {number}: {} change(s){}{}",
            if rollback { "Rollback step" } else { "Step" },
            plan.changes.len(),
            if moves.is_empty() { "" } else { ": " },
            moves.join(", ")
        );
        let _ = std::io::stdout().flush();
    }

    fn waiting(&self, reason: &str) {
        println!("… {reason}");
        let _ = std::io::stdout().flush();
    }
}
