//! `meridian diff`: what a pull request would do.
//!
//! Puts together the desired-state change between two revisions (unified
//! diffs per file), the plan of the head against the live world, every
//! policy violation, and the traffic impact: each region's expected share of
//! new traffic now and after the change. Markdown is what the PR comment shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use meridian_provider::Address;
use serde::Serialize;

use crate::observe::Observation;
use crate::plan::render::{self, Format, Style};
use crate::plan::{FORMAT_VERSION, Plan};
use crate::source::Snapshot;
use crate::traffic::{self, Impact, TrafficInput};

/// One file's change.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    /// Repository-relative path.
    pub path: String,
    /// `added`, `modified` or `deleted`.
    pub status: &'static str,
    /// Unified diff.
    pub unified: String,
}

/// A pull request's preview.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// JSON format version.
    pub format_version: u32,
    /// Repository (credentials removed).
    pub repository: String,
    /// Base commit.
    pub base: String,
    /// Head commit.
    pub head: String,
    /// Desired-state folder.
    pub path: String,
    /// Changed files.
    pub files: Vec<FileChange>,
    /// Things ignored while reading the head.
    pub notes: Vec<String>,
    /// Validation errors of the head (`file:line:col: field: message`).
    pub errors: Vec<String>,
    /// The head's plan against the live world (absent when the head is invalid).
    pub plan: Option<Plan>,
    /// Traffic share per region, now and after the change.
    pub traffic: Vec<Impact>,
}

impl Preview {
    /// Whether a policy blocks the head.
    pub fn is_blocked(&self) -> bool {
        self.plan.as_ref().is_some_and(Plan::is_blocked)
    }
}

/// Unified diffs of every changed file between two snapshots.
pub fn file_changes(base: &Snapshot, head: &Snapshot) -> Vec<FileChange> {
    let old: BTreeMap<&str, &str> = base
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let new: BTreeMap<&str, &str> = head
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let mut paths: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for path in paths {
        let (before, after) = (old.get(path).copied(), new.get(path).copied());
        if before == after {
            continue;
        }
        let status = match (before, after) {
            (None, _) => "added",
            (_, None) => "deleted",
            _ => "modified",
        };
        let diff = similar::TextDiff::from_lines(before.unwrap_or(""), after.unwrap_or(""));
        let unified = diff
            .unified_diff()
            .context_radius(3)
            .header(
                &if before.is_some() {
                    format!("a/{path}")
                } else {
                    "/dev/null".to_owned()
                },
                &if after.is_some() {
                    format!("b/{path}")
                } else {
                    "/dev/null".to_owned()
                },
            )
            .to_string();
        out.push(FileChange {
            path: path.to_owned(),
            status,
            unified,
        });
    }
    out
}

/// The traffic impact of moving from the observed world to the desired one.
/// Desired objects take the observed health of the same address (unknown
/// means healthy).
pub fn traffic_impact(
    state: &crate::model::DesiredState,
    observation: &Observation,
    desired: &crate::desired::DesiredResources,
) -> Vec<Impact> {
    let live: BTreeMap<Address, TrafficInput> = observation
        .resources
        .iter()
        .map(|(_, o)| {
            (
                o.address.clone(),
                TrafficInput {
                    resource: o.resource.clone(),
                    health: o.health.clone(),
                },
            )
        })
        .collect();
    let wanted: BTreeMap<Address, TrafficInput> = desired
        .iter()
        .map(|(address, d)| {
            (
                address.clone(),
                TrafficInput {
                    resource: d.resource.clone(),
                    health: live.get(address).and_then(|l| l.health.clone()),
                },
            )
        })
        .collect();
    traffic::compare(&live, &wanted, &traffic::declarations(state))
}

/// The rules and clients a prediction rests on, for humans.
fn basis(impact: &Impact) -> String {
    traffic::rules::basis(
        &impact.subject,
        &impact.rules,
        &impact.clients,
        &impact.notes,
    )
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(8)]
}

fn percent(share: Option<f64>) -> String {
    share.map_or("—".to_owned(), |s| format!("{:.1}%", s * 100.0))
}

fn arrow(impact: &crate::traffic::RegionImpact) -> &'static str {
    let delta = impact.after.unwrap_or(0.0) - impact.before.unwrap_or(0.0);
    if delta >= 0.005 {
        "▲"
    } else if delta <= -0.005 {
        "▼"
    } else {
        ""
    }
}

fn headline(preview: &Preview) -> String {
    let range = format!("`{}..{}`", short(&preview.base), short(&preview.head));
    if !preview.errors.is_empty() {
        return format!(
            "**meridian diff** {range}: ❌ the desired state is invalid ({} error(s)); nothing can be applied",
            preview.errors.len()
        );
    }
    let Some(plan) = &preview.plan else {
        return format!("**meridian diff** {range}");
    };
    let moved = preview.traffic.iter().filter(|i| i.changed()).count();
    let mut parts = Vec::new();
    if plan.is_blocked() {
        parts.push(format!(
            "⛔ blocked by policy ({} violation(s))",
            plan.violations.len()
        ));
    }
    if plan.errored {
        parts.push("⚠️ the live world could not be fully observed".to_owned());
    }
    let s = plan.summary;
    parts.push(if plan.is_empty() {
        "no changes to the live world".to_owned()
    } else {
        s.counts()
    });
    parts.push(if moved == 0 {
        "no traffic moves".to_owned()
    } else {
        format!("traffic moves on {moved} listener(s)/service(s)")
    });
    format!("**meridian diff** {range}: {}", parts.join(" · "))
}

/// Renders a preview.
pub fn render(preview: &Preview, format: Format) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(preview).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Markdown => markdown(preview),
        Format::Text => text(preview),
    }
}

fn markdown(preview: &Preview) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", headline(preview));
    if !preview.errors.is_empty() {
        let _ = writeln!(out, "```");
        for error in &preview.errors {
            let _ = writeln!(out, "{error}");
        }
        let _ = writeln!(out, "```\n");
    }
    if let Some(plan) = &preview.plan {
        for note in &plan.notes {
            let _ = writeln!(out, "> note: {note}\n");
        }
        for conflict in &plan.conflicts {
            let _ = writeln!(out, "- ⚠️ {conflict}");
        }
        for v in &plan.violations {
            let _ = writeln!(out, "- ⛔ {} (`{}`)", v.message, v.location);
        }
        if plan.is_blocked() {
            let _ = writeln!(out);
        }
    }
    let mut moved: Vec<&Impact> = preview.traffic.iter().filter(|i| i.changed()).collect();
    if moved.len() > render::LISTED {
        // The largest moves first; the rest are counted.
        moved.sort_by(|a, b| largest_move(b).total_cmp(&largest_move(a)));
    }
    let unlisted = moved.len().saturating_sub(render::LISTED);
    moved.truncate(render::LISTED);
    if !moved.is_empty() {
        let _ = writeln!(
            out,
            "**Traffic impact** (expected share of new traffic per region)\n"
        );
        if unlisted > 0 {
            let _ = writeln!(
                out,
                "Traffic moves on {} listeners and services; the {} largest moves are listed (`--format json` has them all).\n",
                moved.len() + unlisted,
                moved.len()
            );
        }
        let _ = writeln!(
            out,
            "| listener / service | region | now | after |\n|---|---|---:|---:|"
        );
        for impact in &moved {
            for region in &impact.regions {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    impact.subject,
                    region.region,
                    percent(region.before),
                    format!("{} {}", percent(region.after), arrow(region)).trim_end()
                );
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "How these shares were predicted (rules: `docs/traffic-model.md`):\n"
        );
        // In a large preview, predictions that rest on the same rules and
        // clients are said once.
        let dedupe = moved.len() > 10;
        let mut said = std::collections::BTreeSet::new();
        let mut same = 0;
        for impact in &moved {
            let line = basis(impact);
            let rules = line
                .split_once(": ")
                .map_or(line.as_str(), |(_, r)| r)
                .to_owned();
            if !dedupe || said.insert(rules) {
                let _ = writeln!(out, "- {line}");
            } else {
                same += 1;
            }
        }
        if same > 0 {
            let _ = writeln!(
                out,
                "- {same} more rest on the same rules and clients as one above"
            );
        }
        let _ = writeln!(out);
    }
    if let Some(schedule) = preview.plan.as_ref().and_then(|p| p.schedule.as_ref()) {
        let _ = writeln!(out, "**Rollout.** {}\n", render::schedule_heading(schedule));
        let _ = writeln!(out, "{}", render::schedule_table_markdown(schedule));
    }
    if let Some(plan) = &preview.plan
        && !plan.is_empty()
    {
        let _ = writeln!(
            out,
            "<details><summary>Plan ({} change(s))</summary>\n",
            plan.changes.len()
        );
        if plan.changes.len() > render::LISTED {
            let _ = writeln!(
                out,
                "{}\nThe first {} changes:\n",
                render::change_counts_markdown(&plan.changes),
                render::LISTED
            );
        }
        let _ = writeln!(out, "```diff");
        for change in plan.changes.iter().take(render::LISTED) {
            let _ = writeln!(out, "{} {}", change.action.symbol(), change.address);
            for field in &change.fields {
                if matches!(
                    change.action,
                    meridian_provider::Action::Update | meridian_provider::Action::Adopt
                ) {
                    let _ = writeln!(
                        out,
                        "!     {}: {} → {}",
                        field.path,
                        render::show_value(field.before.as_ref()),
                        render::show_value(field.after.as_ref())
                    );
                }
            }
        }
        if plan.changes.len() > render::LISTED {
            let _ = writeln!(
                out,
                "# … and {} more (`--format json` has every change)",
                plan.changes.len() - render::LISTED
            );
        }
        let _ = writeln!(out, "```\n\n</details>\n");
    }
    if !preview.files.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Desired-state changes ({} file(s))</summary>\n",
            preview.files.len()
        );
        for file in &preview.files {
            let (unified, cut) = head_lines(&file.unified, FILE_DIFF_LINES);
            let _ = writeln!(
                out,
                "`{}` ({})\n\n```diff\n{unified}```\n",
                file.path, file.status
            );
            if cut > 0 {
                let _ = writeln!(out, "… {cut} more diff lines (`git diff` shows them).\n");
            }
        }
        let _ = writeln!(out, "</details>\n");
    }
    if !preview.traffic.is_empty() {
        let shown = preview.traffic.len().min(render::LISTED);
        let _ = writeln!(
            out,
            "<details><summary>Traffic shares, {}</summary>\n\n| listener / service | region | now | after |\n|---|---|---:|---:|",
            if shown < preview.traffic.len() {
                format!(
                    "the first {shown} of {} listeners and services",
                    preview.traffic.len()
                )
            } else {
                "all listeners and services".to_owned()
            }
        );
        for impact in preview.traffic.iter().take(shown) {
            for region in &impact.regions {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} |",
                    impact.subject,
                    region.region,
                    percent(region.before),
                    percent(region.after)
                );
            }
        }
        let _ = writeln!(out);
        // Every prediction's basis in a small preview; a few in a large one.
        let explained = if shown <= 10 { shown } else { 3 };
        for impact in preview.traffic.iter().take(explained) {
            let _ = writeln!(out, "- {}", basis(impact));
        }
        if shown > explained {
            let _ = writeln!(out, "- (the other predictions: `--format json`)");
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    for note in &preview.notes {
        let _ = writeln!(out, "<sub>note: {note}</sub><br>");
    }
    let _ = writeln!(
        out,
        "<sub>meridian · `{}` · preview format {FORMAT_VERSION}</sub>",
        preview.path
    );
    render::fit_comment(out)
}

/// Diff lines of one file shown in a Markdown preview.
const FILE_DIFF_LINES: usize = 400;

/// The first `limit` lines of `text`, and how many were left out.
fn head_lines(text: &str, limit: usize) -> (String, usize) {
    let total = text.lines().count();
    if total <= limit {
        return (text.to_owned(), 0);
    }
    let mut out: String = text.split_inclusive('\n').take(limit).collect();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    (out, total - limit)
}

/// The largest change of share of one subject, in points.
fn largest_move(impact: &Impact) -> f64 {
    impact
        .regions
        .iter()
        .map(|r| (r.after.unwrap_or(0.0) - r.before.unwrap_or(0.0)).abs())
        .fold(0.0, f64::max)
}

fn text(preview: &Preview) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        headline(preview).replace("**", "").replace('`', "")
    );
    for error in &preview.errors {
        let _ = writeln!(out, "{error}");
    }
    for file in &preview.files {
        let _ = writeln!(out, "\n{} ({})\n{}", file.path, file.status, file.unified);
    }
    if let Some(plan) = &preview.plan {
        let _ = writeln!(
            out,
            "\n{}",
            render::plan(plan, Format::Text, Style { color: false })
        );
    }
    if !preview.traffic.is_empty() {
        let _ = writeln!(
            out,
            "Traffic (expected share of new traffic per region, now -> after):"
        );
        for impact in &preview.traffic {
            let _ = writeln!(out, "  {}", impact.subject);
            let _ = writeln!(
                out,
                "    rules: {}",
                impact
                    .rules
                    .iter()
                    .map(|r| r.label())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let _ = writeln!(out, "    {}", impact.clients);
            for note in &impact.notes {
                let _ = writeln!(out, "    assumed: {note}");
            }
            for region in &impact.regions {
                let _ = writeln!(
                    out,
                    "    {:<16} {:>7} -> {:>7} {}",
                    region.region,
                    percent(region.before),
                    percent(region.after),
                    arrow(region)
                );
            }
        }
    }
    for note in &preview.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}
