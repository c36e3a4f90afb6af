//! `meridian failover`: the desired-state change that drains a region.
//!
//! Sets `trafficDial: 0` on every Global Accelerator endpoint group in the
//! region and `capacityScaler: 0` on every GCP backend there (and, with a
//! target region, raises the target's groups and backends to 100 / 1.0). The
//! YAML text is edited in place at the exact scalar positions, so comments
//! and formatting survive, and the result is loaded and validated by the
//! project's own loader before anyone sees it.
//!
//! It never touches the live cloud: Git stays the source of truth. The
//! change is either a patch for `git apply` or a commit on a new branch,
//! made from the object database without touching the working tree, the
//! index or the current branch. A drain that would leave a listener or
//! service without enough serving regions, or move classified data to a
//! region its residency policy forbids, is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meridian_provider::{Address, Resource};

use crate::desired::{self, DesiredResources};
use crate::model::raw::TrafficKind;
use crate::model::regions;
use crate::model::yaml::Pos;
use crate::model::{self, DesiredState, Diagnostic, LoadError, SourceFile};
use crate::traffic::{self, SubjectKey, TrafficInput};
use crate::whatif;
use meridian_provider::regions::backend_group_region;

/// Why no change can be produced.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// A region neither cloud has.
    #[error(
        "unknown region `{region}`; give an AWS region ({}) or a Google Cloud region ({})",
        regions::AWS.join(", "),
        regions::GCP.join(", ")
    )]
    UnknownRegion {
        /// What was given.
        region: String,
    },
    /// A real region nothing in the desired state uses.
    #[error(
        "no endpoint group or backend of the desired state is in `{region}`; regions in use: {}",
        .in_use.join(", ")
    )]
    NotPresent {
        /// What was given.
        region: String,
        /// Regions with an endpoint group or backend.
        in_use: Vec<String>,
    },
    /// `--to` names the region being drained.
    #[error("--to names the region being drained ({region}); give another region")]
    SameRegion {
        /// The region.
        region: String,
    },
    /// The drain is unsafe; nothing was written.
    #[error("refused: {}", .reasons.join("; "))]
    Refused {
        /// Why it is refused.
        reasons: Vec<String>,
        /// What else the drain would do that is worth knowing (capacity).
        warnings: Vec<String>,
    },
    /// The text cannot be edited safely in place.
    #[error("cannot edit the desired state in place: {0}")]
    CannotEdit(String),
    /// The edited documents do not validate.
    #[error("the edited desired state is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
    /// A Git operation failed or the repository is not in a usable state.
    #[error("{0}")]
    Git(String),
}

impl From<git2::Error> for FailoverError {
    fn from(error: git2::Error) -> Self {
        FailoverError::Git(error.message().to_owned())
    }
}

/// One scalar changed (or added, when the field was absent).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldEdit {
    /// The file, as loaded.
    pub file: String,
    /// Where, in the file as it was.
    pub pos: Pos,
    /// `GlobalAccelerator/api`.
    pub document: String,
    /// `listener https, endpoint group us-east-1`.
    pub target: String,
    /// `trafficDial` or `capacityScaler`.
    pub field: &'static str,
    /// The value before (`100 (default)` when the field was absent).
    pub before: String,
    /// The value after.
    pub after: String,
}

/// A file and its new content.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedFile {
    /// The file, as loaded.
    pub path: String,
    /// Content before.
    pub before: String,
    /// Content after.
    pub after: String,
}

/// The desired-state change that drains a region.
#[derive(Debug, Clone)]
pub struct Drain {
    /// The region drained.
    pub from: String,
    /// The region raised, if any.
    pub to: Option<String>,
    /// Every scalar edit, in file order.
    pub edits: Vec<FieldEdit>,
    /// The files that change.
    pub files: Vec<ChangedFile>,
    /// The edited desired state, validated.
    pub state: DesiredState,
    /// Things worth knowing that do not block the change.
    pub warnings: Vec<String>,
}

impl Drain {
    /// A one-line summary.
    pub fn summary(&self) -> String {
        let count = |field: &str, value: &str| {
            self.edits
                .iter()
                .filter(|e| e.field == field && e.after == value)
                .count()
        };
        let mut text = format!(
            "Drain {}: trafficDial 0 on {} endpoint group(s), capacityScaler 0 on {} backend(s)",
            self.from,
            count("trafficDial", "0"),
            count("capacityScaler", "0")
        );
        if let Some(to) = &self.to {
            text.push_str(&format!(
                "; {to} raised: trafficDial 100 on {} group(s), capacityScaler 1.0 on {} backend(s)",
                count("trafficDial", "100"),
                count("capacityScaler", "1.0")
            ));
        }
        text
    }

    /// The commit message for the change.
    pub fn commit_message(&self) -> String {
        let mut message = format!("{}\n\n", self.summary());
        message.push_str(&format!(
            "Made by `meridian failover --from {}{}`. It changes desired state only: nothing in the live cloud moves until this is merged and applied.\n\n",
            self.from,
            self.to
                .as_ref()
                .map(|t| format!(" --to {t}"))
                .unwrap_or_default()
        ));
        for edit in &self.edits {
            message.push_str(&format!(
                "- {} {}: {} {} -> {} ({}:{})\n",
                edit.document,
                edit.target,
                edit.field,
                edit.before,
                edit.after,
                edit.file,
                edit.pos
            ));
        }
        message
    }
}

/// What one edit does to the text.
enum TextChange {
    /// Replace the scalar that starts at `pos`.
    Replace { pos: Pos, current: f64 },
    /// Add `field: value` to the mapping that starts at `mapping`, after the
    /// line holding `anchor` (the `region` / `group` value).
    Insert { mapping: Pos, anchor: Pos },
}

struct Planned {
    edit: FieldEdit,
    change: TextChange,
}

/// Byte offset of a 1-based line and character column.
fn offset(text: &str, pos: Pos) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..pos.line {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    if pos.col == line.chars().count() + 1 {
        return Some(line_end);
    }
    line.char_indices()
        .nth(pos.col.checked_sub(1)?)
        .map(|(i, _)| line_start + i)
}

/// The plain scalar token starting at `at`.
fn token(text: &str, at: usize) -> &str {
    let rest = &text[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']' | '#'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Applies planned changes to one file's text.
fn apply_changes(text: &str, planned: &[&Planned]) -> Result<String, FailoverError> {
    // (offset, bytes removed, text inserted); applied from the end.
    let mut splices: Vec<(usize, usize, String)> = Vec::new();
    for p in planned {
        let edit = &p.edit;
        let wrong = |what: &str| {
            FailoverError::CannotEdit(format!(
                "{}:{}: {} of {} {}: {what}; edit it by hand",
                edit.file, edit.pos, edit.field, edit.document, edit.target
            ))
        };
        match p.change {
            TextChange::Replace { pos, current } => {
                let at = offset(text, pos).ok_or_else(|| wrong("position not found"))?;
                let found = token(text, at);
                if found.parse::<f64>().ok() != Some(current) {
                    return Err(wrong(&format!(
                        "expected the plain number {current} there, found `{found}`"
                    )));
                }
                splices.push((at, found.len(), edit.after.clone()));
            }
            TextChange::Insert { mapping, anchor } => {
                let at = offset(text, mapping).ok_or_else(|| wrong("position not found"))?;
                if text[at..].starts_with('{') {
                    splices.push((at + 1, 0, format!("{}: {}, ", edit.field, edit.after)));
                } else {
                    let anchor_at =
                        offset(text, anchor).ok_or_else(|| wrong("position not found"))?;
                    let line_end = text[anchor_at..]
                        .find('\n')
                        .map_or(text.len(), |i| anchor_at + i);
                    let indent = " ".repeat(mapping.col.saturating_sub(1));
                    let line = format!("{indent}{}: {}", edit.field, edit.after);
                    if line_end == text.len() {
                        splices.push((line_end, 0, format!("\n{line}")));
                    } else {
                        splices.push((line_end + 1, 0, format!("{line}\n")));
                    }
                }
            }
        }
    }
    splices.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = text.to_owned();
    for (at, remove, insert) in splices {
        out.replace_range(at..at + remove, &insert);
    }
    Ok(out)
}

fn show_scaler(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// Checks that a region is known and used.
fn check_region(region: &str, in_use: &BTreeSet<String>) -> Result<(), FailoverError> {
    if !regions::is_aws(region) && !regions::is_gcp(region) {
        return Err(FailoverError::UnknownRegion {
            region: region.to_owned(),
        });
    }
    if !in_use.contains(region) {
        return Err(FailoverError::NotPresent {
            region: region.to_owned(),
            in_use: in_use.iter().cloned().collect(),
        });
    }
    Ok(())
}

/// Plans every scalar edit of the drain.
fn plan_edits(state: &DesiredState, from: &str, to: Option<&str>) -> Vec<Planned> {
    let mut planned = Vec::new();
    for ga in &state.accelerators {
        let document = format!("GlobalAccelerator/{}", ga.name());
        for (li, listener) in ga.doc.spec.listeners.iter().enumerate() {
            for (gi, group) in listener.endpoint_groups.iter().enumerate() {
                let target_dial = if group.region == from {
                    0
                } else if Some(group.region.as_str()) == to {
                    100
                } else {
                    continue;
                };
                if group.traffic_dial == target_dial {
                    continue;
                }
                let path = format!("spec.listeners[{li}].endpointGroups[{gi}]");
                let field_path = format!("{path}.trafficDial");
                let explicit = ga.positions.get(&field_path).copied();
                let change = match explicit {
                    Some(pos) => TextChange::Replace {
                        pos,
                        current: f64::from(group.traffic_dial),
                    },
                    None => TextChange::Insert {
                        mapping: ga.at(&path),
                        anchor: ga.at(&format!("{path}.region")),
                    },
                };
                planned.push(Planned {
                    edit: FieldEdit {
                        file: ga.file.to_string(),
                        pos: explicit.unwrap_or_else(|| ga.at(&format!("{path}.region"))),
                        document: document.clone(),
                        target: format!(
                            "listener {}, endpoint group {}",
                            listener.name, group.region
                        ),
                        field: "trafficDial",
                        before: if explicit.is_some() {
                            group.traffic_dial.to_string()
                        } else {
                            format!("{} (default)", group.traffic_dial)
                        },
                        after: target_dial.to_string(),
                    },
                    change,
                });
            }
        }
    }
    for bs in &state.backend_services {
        let document = format!("BackendService/{}", bs.name());
        for (bi, backend) in bs.doc.spec.backends.iter().enumerate() {
            let Ok(region) = backend_group_region(&backend.group) else {
                continue;
            };
            let target: f64 = if region == from {
                0.0
            } else if Some(region.as_str()) == to {
                1.0
            } else {
                continue;
            };
            if backend.capacity_scaler == target {
                continue;
            }
            let path = format!("spec.backends[{bi}]");
            let field_path = format!("{path}.capacityScaler");
            let explicit = bs.positions.get(&field_path).copied();
            let change = match explicit {
                Some(pos) => TextChange::Replace {
                    pos,
                    current: backend.capacity_scaler,
                },
                None => TextChange::Insert {
                    mapping: bs.at(&path),
                    anchor: bs.at(&format!("{path}.group")),
                },
            };
            planned.push(Planned {
                edit: FieldEdit {
                    file: bs.file.to_string(),
                    pos: explicit.unwrap_or_else(|| bs.at(&format!("{path}.group"))),
                    document: document.clone(),
                    target: format!("backend {}", backend.group),
                    field: "capacityScaler",
                    before: if explicit.is_some() {
                        show_scaler(backend.capacity_scaler)
                    } else {
                        format!("{} (default)", show_scaler(backend.capacity_scaler))
                    },
                    after: if target == 0.0 { "0" } else { "1.0" }.to_owned(),
                },
                change,
            });
        }
    }
    planned.sort_by(|a, b| (&a.edit.file, a.edit.pos).cmp(&(&b.edit.file, b.edit.pos)));
    planned
}

/// The resources the edit is meant to produce: `before` with the drained
/// and raised dials and scalers.
fn intended(before: &DesiredResources, from: &str, to: Option<&str>) -> DesiredResources {
    let mut out = before.clone();
    for resource in out.values_mut() {
        match &mut resource.resource {
            Resource::EndpointGroup(spec) => {
                if spec.region == from {
                    spec.traffic_dial = 0;
                } else if Some(spec.region.as_str()) == to {
                    spec.traffic_dial = 100;
                }
            }
            Resource::Backend(spec) => {
                if spec.region == from {
                    spec.capacity_scaler = 0.0;
                } else if Some(spec.region.as_str()) == to {
                    spec.capacity_scaler = 1.0;
                }
            }
            _ => {}
        }
    }
    out
}

fn world(resources: &DesiredResources) -> BTreeMap<Address, TrafficInput> {
    resources
        .iter()
        .map(|(a, d)| {
            (
                a.clone(),
                TrafficInput {
                    resource: d.resource.clone(),
                    health: None,
                },
            )
        })
        .collect()
}

/// Kind, name and labels of the document behind a subject.
fn subject_document<'a>(
    state: &'a DesiredState,
    key: &SubjectKey,
) -> Option<(TrafficKind, String, &'a BTreeMap<String, String>)> {
    match key {
        SubjectKey::Listener { accelerator, .. } => state.accelerator(accelerator).map(|a| {
            (
                TrafficKind::GlobalAccelerator,
                a.name().to_owned(),
                &a.doc.metadata.labels,
            )
        }),
        SubjectKey::Service { name } => state.backend_service(name).map(|b| {
            (
                TrafficKind::BackendService,
                b.name().to_owned(),
                &b.doc.metadata.labels,
            )
        }),
    }
}

fn fmt_percent(share: f64) -> String {
    // `+ 0.0` turns the -0.0 an empty sum gives into 0.0.
    format!("{:.1}%", share * 100.0 + 0.0)
}

/// Refusals and warnings for moving from `before` to `after` (normal
/// operation, every endpoint healthy).
fn safety(before: &DesiredState, after: &DesiredState) -> (Vec<String>, Vec<String>) {
    let declared = traffic::declarations(after);
    let mut old = traffic::subjects(&world(&desired::expand(before)), &declared);
    let mut new = traffic::subjects(&world(&desired::expand(after)), &declared);
    traffic::align_default_clients(&mut old, &mut new);
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    for (key, subject_after) in &new {
        let Some(subject_before) = old.get(key) else {
            continue;
        };
        if subject_before == subject_after {
            continue;
        }
        let Some((kind, name, labels)) = subject_document(after, key) else {
            continue;
        };
        let serving_before = subject_before.serving_regions();
        let serving_after = subject_after.serving_regions();
        let (min, policy) = whatif::min_serving(after, kind, &name);
        if serving_after.len() < min as usize && serving_after.len() < serving_before.len() {
            let required = match policy {
                Some(policy) => format!("{policy} requires at least {min}"),
                None => "traffic must never drop to zero serving regions".to_owned(),
            };
            refusals.push(format!(
                "{key} would keep {} serving region(s){} after the drain; {required}",
                serving_after.len(),
                if serving_after.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", serving_after.join(", "))
                }
            ));
        }
        let routing_before = subject_before.route();
        let routing_after = subject_after.route();
        let regions = subject_after.regions();
        let shares_after = routing_after.shares(&regions);
        if let Some((classification, policies)) = whatif::classification(after, labels) {
            for policy in &policies {
                // A client-scoped policy speaks of its clients' traffic only.
                let scoped = |routing: &traffic::Routing, region: &str| -> f64 {
                    routing
                        .flows
                        .iter()
                        .filter(|f| {
                            f.to == region
                                && (policy.doc.spec.client_regions.is_empty()
                                    || crate::policy::client_scoped(policy, &f.from))
                        })
                        .map(|f| f.share)
                        .sum()
                };
                for region in &regions {
                    let was = scoped(&routing_before, region);
                    let share = scoped(&routing_after, region);
                    if share <= was + 1e-9 {
                        continue;
                    }
                    if let Some(why) = whatif::verdict(policy, region) {
                        refusals.push(format!(
                            "{key} would move `{classification}` data to {region} ({} → {} of new traffic{}); DataResidencyPolicy/{} forbids it: {why}",
                            fmt_percent(was),
                            fmt_percent(share),
                            if policy.doc.spec.client_regions.is_empty() {
                                String::new()
                            } else {
                                format!(
                                    ", clients in {}",
                                    policy.doc.spec.client_regions.join(", ")
                                )
                            },
                            policy.name()
                        ));
                    }
                }
            }
        }
        // Declared capacity, where both sides of the comparison exist; only
        // what the drain makes worse.
        let shares_before = routing_before.shares(&regions);
        let basis = format!(
            "{}; {}",
            routing_after.rule_labels().join("; "),
            routing_after.clients.describe()
        );
        match subject_after {
            traffic::Subject::Listener(listener) => {
                if let Some(expected) = listener.expected_rps {
                    for (region, group) in &listener.groups {
                        let Some(capacity) = group.capacity_rps else {
                            continue;
                        };
                        let load = expected * shares_after.get(region).copied().unwrap_or(0.0);
                        let was = expected * shares_before.get(region).copied().unwrap_or(0.0);
                        if load > capacity + 0.5 && load > was + 0.5 {
                            warnings.push(format!(
                                "{key}: {region} would carry about {load:.0} requests per second after the drain, above its declared capacityRps {capacity:.0} ({basis})"
                            ));
                        }
                    }
                }
            }
            traffic::Subject::Service(service) => {
                let total = |s: &traffic::Service| -> Option<f64> {
                    s.serving_regions()
                        .iter()
                        .map(|r| s.region_capacity(r))
                        .sum()
                };
                if let (Some(expected), Some(after_capacity)) =
                    (service.expected_rps, total(service))
                {
                    let before_capacity = match subject_before {
                        traffic::Subject::Service(s) => total(s),
                        traffic::Subject::Listener(_) => None,
                    };
                    if after_capacity < expected - 0.5
                        && before_capacity.is_none_or(|b| after_capacity < b - 0.5)
                    {
                        warnings.push(format!(
                            "{key}: the remaining backends' capacity (capacity scaler × target capacity) would be {after_capacity:.0} requests per second after the drain, below its expectedRps {expected:.0}; every region would run over its target ({basis})"
                        ));
                    }
                }
            }
        }
    }
    (refusals, warnings)
}

/// Plans the drain of `from` (and the raise of `to`) over the desired-state
/// files, validates the result, and checks that it is safe. Nothing is
/// written.
pub fn drain(
    files: &[SourceFile],
    state: &DesiredState,
    from: &str,
    to: Option<&str>,
) -> Result<Drain, FailoverError> {
    let in_use = whatif::regions_in_use(state);
    check_region(from, &in_use)?;
    if let Some(to) = to {
        check_region(to, &in_use)?;
        if to == from {
            return Err(FailoverError::SameRegion {
                region: to.to_owned(),
            });
        }
    }
    let planned = plan_edits(state, from, to);
    let mut changed = Vec::new();
    let mut edited_files = Vec::new();
    for file in files {
        let mine: Vec<&Planned> = planned
            .iter()
            .filter(|p| p.edit.file == file.path)
            .collect();
        if mine.is_empty() {
            edited_files.push(file.clone());
            continue;
        }
        let after = apply_changes(&file.text, &mine)?;
        changed.push(ChangedFile {
            path: file.path.clone(),
            before: file.text.clone(),
            after: after.clone(),
        });
        edited_files.push(SourceFile {
            path: file.path.clone(),
            text: after,
        });
    }
    let edited = match model::load(&edited_files) {
        Ok(state) => state,
        Err(LoadError::Invalid(diagnostics)) => return Err(FailoverError::Invalid(diagnostics)),
        Err(error) => return Err(FailoverError::CannotEdit(error.to_string())),
    };
    let want = intended(&desired::expand(state), from, to);
    if desired::expand(&edited) != want {
        return Err(FailoverError::CannotEdit(
            "the edited documents differ from the intended change in more than the drained dials and scalers (is a value shared through a YAML anchor or merge key?); edit them by hand".to_owned(),
        ));
    }
    let (refusals, mut warnings) = safety(state, &edited);
    if !refusals.is_empty() {
        return Err(FailoverError::Refused {
            reasons: refusals,
            warnings,
        });
    }
    for violation in crate::policy::residency_violations(&edited) {
        warnings.push(format!(
            "plan and apply stay blocked whatever this change does: {} ({})",
            violation.message, violation.location
        ));
    }
    Ok(Drain {
        from: from.to_owned(),
        to: to.map(str::to_owned),
        edits: planned.into_iter().map(|p| p.edit).collect(),
        files: changed,
        state: edited,
        warnings,
    })
}

/// A unified diff of the changed files, for `git apply`; `display` maps a
/// loaded path to the path the patch names (relative to where it applies).
pub fn patch(drain: &Drain, display: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    for file in &drain.files {
        let path = display(&file.path);
        let diff = similar::TextDiff::from_lines(&file.before, &file.after);
        out.push_str(&format!("diff --git a/{path} b/{path}\n"));
        out.push_str(
            &diff
                .unified_diff()
                .context_radius(3)
                .header(&format!("a/{path}"), &format!("b/{path}"))
                .to_string(),
        );
    }
    out
}

/// Where a patch's paths are relative to, that is where `git apply` runs:
/// the repository's work tree when `dir` is inside one, else the current
/// directory when `dir` is under it, else the folder holding `dir`.
pub fn patch_root(dir: &Path) -> PathBuf {
    if let Some(root) = git2::Repository::discover(dir)
        .ok()
        .and_then(|repo| repo.workdir().map(Path::to_path_buf))
        .and_then(|root| root.canonicalize().ok())
    {
        return root;
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    match std::env::current_dir().and_then(|d| d.canonicalize()) {
        Ok(cwd) if dir.starts_with(&cwd) => cwd,
        _ => dir.parent().map(Path::to_path_buf).unwrap_or(dir),
    }
}

/// A loaded path relative to `root`, with `/` separators.
pub fn relative_to(root: &Path, path: &str) -> String {
    let absolute = Path::new(path)
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(path));
    let shown = absolute
        .strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(path));
    shown
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn signature(repo: &git2::Repository) -> Result<git2::Signature<'static>, git2::Error> {
    if let Ok(signature) = repo.signature() {
        return Ok(signature.to_owned());
    }
    let name = std::env::var("GIT_AUTHOR_NAME").unwrap_or_else(|_| "meridian".to_owned());
    let email =
        std::env::var("GIT_AUTHOR_EMAIL").unwrap_or_else(|_| "meridian@localhost".to_owned());
    git2::Signature::now(&name, &email)
}

/// Every desired-state file under `prefix` in `tree`, as the loader reads
/// a folder: `*.yaml` / `*.yml` (any case), hidden entries skipped.
fn tree_files(
    repo: &git2::Repository,
    tree: &git2::Tree<'_>,
    prefix: &str,
) -> Result<Vec<SourceFile>, FailoverError> {
    let mut files = Vec::new();
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        let Ok(name) = entry.name() else {
            return git2::TreeWalkResult::Skip;
        };
        if name.starts_with('.') {
            return git2::TreeWalkResult::Skip;
        }
        let path = format!("{root}{name}");
        let inside = prefix.is_empty() || path.starts_with(&format!("{prefix}/"));
        let lower = name.to_ascii_lowercase();
        if entry.kind() == Some(git2::ObjectType::Blob)
            && inside
            && (lower.ends_with(".yaml") || lower.ends_with(".yml"))
        {
            match repo
                .find_blob(entry.id())
                .map(|b| String::from_utf8(b.content().to_vec()))
            {
                Ok(Ok(text)) => files.push(SourceFile { path, text }),
                Ok(Err(_)) => failure = Some(format!("{path} is not UTF-8 text")),
                Err(error) => failure = Some(error.message().to_owned()),
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    if let Some(failure) = failure {
        return Err(FailoverError::Git(failure));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Commits the drain on a new branch `name` of the repository holding
/// `dir`, on top of its current `HEAD`, and returns the commit id. Only the
/// object database and the new branch are written: the working tree, the
/// index and the current branch stay as they are. The changed files must
/// be committed as they are in the working tree, and the branch's desired
/// state is loaded again and must be exactly the drained one.
pub fn commit_branch(dir: &Path, name: &str, drain: &Drain) -> Result<git2::Oid, FailoverError> {
    let repo = git2::Repository::discover(dir).map_err(|e| {
        FailoverError::Git(format!(
            "{} is not inside a Git repository ({}); use the patch output instead",
            dir.display(),
            e.message()
        ))
    })?;
    let root = repo
        .workdir()
        .ok_or_else(|| FailoverError::Git("the repository has no work tree".to_owned()))?
        .canonicalize()
        .map_err(|e| FailoverError::Git(e.to_string()))?;
    if !git2::Branch::name_is_valid(name)? {
        return Err(FailoverError::Git(format!(
            "`{name}` is not a valid branch name"
        )));
    }
    if repo.find_branch(name, git2::BranchType::Local).is_ok() {
        return Err(FailoverError::Git(format!(
            "a branch named `{name}` already exists; pick another name"
        )));
    }
    let head = repo.head()?.peel_to_commit().map_err(|e| {
        FailoverError::Git(format!(
            "HEAD has no commit to branch from: {}",
            e.message()
        ))
    })?;
    let head_tree = head.tree()?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    for file in &drain.files {
        let relative = relative_to(&root, &file.path);
        let entry = head_tree.get_path(Path::new(&relative)).map_err(|_| {
            FailoverError::Git(format!(
                "{relative} is not committed; commit the desired state first or use the patch output"
            ))
        })?;
        let committed = repo.find_blob(entry.id())?;
        if committed.content() != file.before.as_bytes() {
            return Err(FailoverError::Git(format!(
                "{relative} has uncommitted changes; commit or stash them first, or use the patch output"
            )));
        }
        let blob = repo.blob(file.after.as_bytes())?;
        let mode = if entry.filemode() == i32::from(git2::FileMode::BlobExecutable) {
            git2::FileMode::BlobExecutable
        } else {
            git2::FileMode::Blob
        };
        update.upsert(&relative, blob, mode);
    }
    let tree_id = update.create_updated(&repo, &head_tree)?;
    let tree = repo.find_tree(tree_id)?;
    // The branch must hold exactly the validated, drained desired state.
    let dir_absolute = dir
        .canonicalize()
        .map_err(|e| FailoverError::Git(e.to_string()))?;
    let prefix = relative_to(&root, &dir_absolute.display().to_string());
    let prefix = if prefix == dir_absolute.display().to_string() {
        String::new()
    } else {
        prefix
    };
    let committed = tree_files(&repo, &tree, &prefix)?;
    let state = match model::load(&committed) {
        Ok(state) => state,
        Err(LoadError::Invalid(diagnostics)) => return Err(FailoverError::Invalid(diagnostics)),
        Err(error) => return Err(FailoverError::Git(error.to_string())),
    };
    if desired::expand(&state) != desired::expand(&drain.state) {
        return Err(FailoverError::Git(format!(
            "the committed desired state under {} differs from the working tree's; commit or stash the other changes first, or use the patch output",
            if prefix.is_empty() {
                "."
            } else {
                prefix.as_str()
            }
        )));
    }
    let signature = signature(&repo)?;
    let commit = repo.commit(
        None,
        &signature,
        &signature,
        &drain.commit_message(),
        &tree,
        &[&head],
    )?;
    repo.branch(name, &repo.find_commit(commit)?, false)?;
    Ok(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_characters_and_tokens_stop_at_flow_punctuation() {
        let text = "a: 1\nb: {x: 100, y: 2}\nc: ü 7 # note\n";
        let at = offset(text, Pos { line: 2, col: 8 }).expect("found");
        assert_eq!(token(text, at), "100");
        let at = offset(text, Pos { line: 3, col: 6 }).expect("found");
        assert_eq!(token(text, at), "7");
        assert_eq!(offset(text, Pos { line: 9, col: 1 }), None);
    }

    #[test]
    fn block_and_flow_mappings_take_an_inserted_field() {
        let text = "groups:\n  - region: us-east-1 # primary\n    endpoints: []\n  - {region: eu-west-1}\n";
        let docs = crate::model::yaml::parse_documents(text).expect("parses");
        let groups = docs[0].get("groups").expect("groups");
        let crate::model::yaml::Value::Seq(items) = &groups.value else {
            panic!("a list")
        };
        let edit = |file: &str| FieldEdit {
            file: file.to_owned(),
            pos: Pos::default(),
            document: "GlobalAccelerator/x".into(),
            target: "group".into(),
            field: "trafficDial",
            before: "100 (default)".into(),
            after: "0".into(),
        };
        let block = Planned {
            edit: edit("f"),
            change: TextChange::Insert {
                mapping: items[0].pos,
                anchor: items[0].get("region").expect("region").pos,
            },
        };
        let flow = Planned {
            edit: edit("f"),
            change: TextChange::Insert {
                mapping: items[1].pos,
                anchor: items[1].get("region").expect("region").pos,
            },
        };
        let out = apply_changes(text, &[&block, &flow]).expect("edits");
        assert_eq!(
            out,
            "groups:\n  - region: us-east-1 # primary\n    trafficDial: 0\n    endpoints: []\n  - {trafficDial: 0, region: eu-west-1}\n"
        );
    }
}
