//! Renderers for plans and drift reports: text, Markdown, JSON.
//!
//! Renderers only format what the plan already holds; they never recompute
//! a diff. Output is deterministic for a given plan.

use std::fmt::Write as _;

use meridian_provider::{Action, Change, FieldChange};
use serde_json::Value;

use super::{FORMAT_VERSION, Plan};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// Versioned JSON for scripts.
    Json,
    /// Markdown, for pull-request comments.
    Markdown,
}

/// ANSI styling, on only for terminals.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Whether to emit colour codes.
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn action(&self, action: Action, text: &str) -> String {
        match action {
            Action::Create => self.paint("32", text),
            Action::Update => self.paint("33", text),
            Action::Delete => self.paint("31", text),
            Action::Adopt => self.paint("36", text),
        }
    }
}

/// A compact rendering of a JSON value.
pub fn show_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "(none)".to_owned(),
        Some(Value::String(s)) => format!("\"{s}\""),
        Some(other) => other.to_string(),
    }
}

fn field_line(field: &FieldChange, action: Action) -> String {
    match action {
        Action::Create => format!("{}: {}", field.path, show_value(field.after.as_ref())),
        Action::Delete => format!("{}: {}", field.path, show_value(field.before.as_ref())),
        Action::Update | Action::Adopt => format!(
            "{}: {} → {}",
            field.path,
            show_value(field.before.as_ref()),
            show_value(field.after.as_ref())
        ),
    }
}

/// `N API writes (a Op1, b Op2)`: what carrying out the plan calls.
pub fn writes_text(plan: &Plan) -> String {
    let ops: Vec<String> = plan
        .writes
        .iter()
        .map(|w| format!("{} {}", w.count, w.operation))
        .collect();
    format!("{} API write(s): {}", plan.write_count(), ops.join(", "))
}

fn summary_line(plan: &Plan) -> String {
    let line = summary_line_only(plan);
    if plan.writes.is_empty() {
        line
    } else {
        format!("{line}\n{}.", writes_text(plan))
    }
}

fn summary_line_only(plan: &Plan) -> String {
    let s = plan.summary;
    if !plan.overridden.is_empty() {
        return held_summary_line(plan);
    }
    if plan.errored && plan.is_empty() {
        "No changes could be planned where the live world was not fully known (see above)."
            .to_owned()
    } else if plan.is_empty() {
        "No changes. The live world matches the desired state.".to_owned()
    } else {
        format!("Plan: {}.", s.counts())
    }
}

/// Renders a plan.
pub fn plan(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Text => plan_text(plan, style),
        Format::Markdown => fit_comment(plan_markdown(plan)),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(plan).unwrap_or_default();
            text.push('\n');
            text
        }
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

fn plan_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "desired state {} ({} documents{}), observed {}",
        short(&plan.source.digest),
        plan.source.documents,
        plan.source
            .revision
            .as_ref()
            .map(|r| format!(", revision {}", short(r)))
            .unwrap_or_default(),
        short(&plan.observed_fingerprint)
    );
    for gap in &plan.gaps {
        let _ = writeln!(
            out,
            "{} {} of provider `{}` could not be observed: {}. Nothing is planned there.",
            style.paint("31", "INCOMPLETE:"),
            gap.family,
            gap.provider,
            gap.error
        );
    }
    for violation in &plan.violations {
        let _ = writeln!(
            out,
            "{} {} ({})",
            style.paint("31", "BLOCKED:"),
            violation.message,
            violation.location
        );
    }
    for conflict in &plan.conflicts {
        let _ = writeln!(out, "{} {conflict}", style.paint("31", "CONFLICT:"));
    }
    for note in &plan.notes {
        let _ = writeln!(out, "{} {note}", style.paint("36", "note:"));
    }
    let _ = writeln!(out);
    if plan.changes.len() > LISTED {
        let _ = writeln!(
            out,
            "{} changes by kind, region and field (the first {LISTED} follow; `--format json` lists every change):",
            plan.changes.len()
        );
        out.push_str(&count_rows(&plan.changes, false, |action| action));
        let _ = writeln!(out);
    }
    for change in plan.changes.iter().take(LISTED) {
        let _ = writeln!(
            out,
            "  {} {}  ({})",
            style.action(change.action, change.action.symbol()),
            style.action(change.action, &change.address.to_string()),
            change.provider
        );
        for field in &change.fields {
            let _ = writeln!(out, "      {}", field_line(field, change.action));
        }
        let _ = writeln!(
            out,
            "      {}",
            style.paint("2", &format!("# {}", change.reason))
        );
    }
    if plan.changes.len() > LISTED {
        let _ = writeln!(
            out,
            "  … and {} more (`--format json` lists every change)",
            plan.changes.len() - LISTED
        );
    }
    if !plan.changes.is_empty() {
        let _ = writeln!(out);
    }
    out.push_str(&held_text(plan, style));
    if let Some(schedule) = &plan.schedule {
        let _ = writeln!(out, "{}", schedule_heading(schedule));
        for line in schedule_lines(schedule) {
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "{}", summary_line(plan));
    if plan.is_blocked() {
        let _ = writeln!(out, "Blocked by policy: nothing will be applied.");
    }
    if plan.errored {
        let _ = writeln!(
            out,
            "This plan cannot be applied: the live world was not fully observed or holds conflicting objects. Re-run when that is resolved."
        );
    }
    out
}

/// `1 h 5 min`, `40 s`.
pub fn duration_text(seconds: u64) -> String {
    match seconds {
        0 => "no waiting".to_owned(),
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!(
            "{} min{}",
            s / 60,
            if s % 60 > 0 {
                format!(" {} s", s % 60)
            } else {
                String::new()
            }
        ),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The one-line summary of a step schedule.
pub fn schedule_heading(schedule: &crate::plan::schedule::Schedule) -> String {
    if schedule.expected_seconds == 0 {
        return format!(
            "Traffic moves in {} step(s), with no bake time between them.",
            schedule.steps.len()
        );
    }
    format!(
        "Traffic moves in {} step(s); expected time to finish: {} of bake time (plus API time).",
        schedule.steps.len(),
        duration_text(schedule.expected_seconds)
    )
}

/// Changes listed one by one in text and Markdown; beyond this many, the
/// rest are counted by kind, region and field (`--format json` lists every
/// change).
pub const LISTED: usize = 50;

/// The largest comment GitHub accepts, in characters.
pub const MAX_COMMENT: usize = 65_536;

/// The region an address serves or lives in, backends included.
fn region_of(address: &meridian_provider::Address) -> Option<String> {
    match address {
        meridian_provider::Address::Backend { group, .. } => {
            meridian_provider::regions::backend_group_region(group).ok()
        }
        other => other.region().map(str::to_owned),
    }
}

/// Changes counted by action, kind, region and changed fields, largest
/// first: `(count, "update", "endpointGroup", "us-east-1", "trafficDial")`.
pub fn change_counts<'c>(
    changes: impl IntoIterator<Item = &'c Change>,
) -> Vec<(usize, &'static str, &'static str, String, String)> {
    let mut counts: std::collections::BTreeMap<
        (&'static str, &'static str, String, String),
        usize,
    > = std::collections::BTreeMap::new();
    for change in changes {
        let fields = if matches!(change.action, Action::Update | Action::Adopt) {
            change
                .fields
                .iter()
                .map(|f| {
                    f.path
                        .split(['.', '['])
                        .next()
                        .unwrap_or(&f.path)
                        .to_owned()
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            String::new()
        };
        let action = change.action.word();
        *counts
            .entry((
                action,
                change.address.kind_name(),
                region_of(&change.address).unwrap_or_else(|| "global".to_owned()),
                fields,
            ))
            .or_default() += 1;
    }
    let mut out: Vec<_> = counts
        .into_iter()
        .map(|((action, kind, region, fields), n)| (n, action, kind, region, fields))
        .collect();
    out.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| (a.1, a.2, &a.3).cmp(&(b.1, b.2, &b.3)))
    });
    out
}

/// The counts of [`change_counts`] as a Markdown table.
pub fn change_counts_markdown(changes: &[Change]) -> String {
    let mut out =
        String::from("| changes | action | kind | region | fields |\n|---:|---|---|---|---|\n");
    out.push_str(&count_rows(changes, true, |action| action));
    out
}

/// The rows of [`change_counts`], one line each: Markdown table rows, or
/// indented text lines; `word` names the action (a plan's "update", a
/// drift report's "changed").
fn count_rows<'c>(
    changes: impl IntoIterator<Item = &'c Change>,
    markdown: bool,
    word: impl Fn(&'static str) -> &'static str,
) -> String {
    let mut out = String::new();
    for (n, action, kind, region, fields) in change_counts(changes) {
        let action = word(action);
        let _ = if markdown {
            let fields = if fields.is_empty() {
                "—".to_owned()
            } else {
                format!("`{fields}`")
            };
            writeln!(out, "| {n} | {action} | {kind} | {region} | {fields} |")
        } else if fields.is_empty() {
            writeln!(out, "  {n:>6} {action} {kind} in {region}")
        } else {
            writeln!(out, "  {n:>6} {action} {kind} in {region}: {fields}")
        };
    }
    out
}

/// One step of a schedule, summarised for a table: what moves, the values,
/// what follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    /// Step number.
    pub step: usize,
    /// The objects that move (listed when few, counted by kind and region
    /// when many), creations and deletions.
    pub what: String,
    /// The lever values, `from → to`, with how many objects move so when
    /// several do.
    pub values: String,
    /// The bake after the step, or `—`.
    pub then: String,
}

/// A schedule's steps as table rows.
pub fn schedule_rows(schedule: &crate::plan::schedule::Schedule) -> Vec<ScheduleRow> {
    schedule
        .steps
        .iter()
        .map(|step| {
            let mut what = Vec::new();
            if step.moves.len() <= 3 {
                what.extend(
                    step.moves
                        .iter()
                        .map(|m| format!("`{}` {}", m.address, m.lever.field())),
                );
            } else {
                let mut by_kind: std::collections::BTreeMap<
                    (&'static str, &'static str),
                    std::collections::BTreeSet<String>,
                > = std::collections::BTreeMap::new();
                let mut counts: std::collections::BTreeMap<(&'static str, &'static str), usize> =
                    std::collections::BTreeMap::new();
                for m in &step.moves {
                    let key = (m.address.kind_name(), m.lever.field());
                    *counts.entry(key).or_default() += 1;
                    if let Some(region) = region_of(&m.address) {
                        by_kind.entry(key).or_default().insert(region);
                    }
                }
                for (key, n) in counts {
                    let regions: Vec<String> = by_kind
                        .remove(&key)
                        .unwrap_or_default()
                        .into_iter()
                        .collect();
                    what.push(format!(
                        "{n} {} `{}`{}",
                        plural(key.0, n),
                        key.1,
                        if regions.is_empty() {
                            String::new()
                        } else {
                            format!(" in {}", regions.join(", "))
                        }
                    ));
                }
            }
            if !step.creates.is_empty() {
                what.push(format!("create {} at 0", count_or_list(&step.creates)));
            }
            if !step.deletes.is_empty() {
                what.push(format!("delete {} (drained)", count_or_list(&step.deletes)));
            }
            let mut values: std::collections::BTreeMap<String, usize> =
                std::collections::BTreeMap::new();
            for m in &step.moves {
                *values
                    .entry(format!("{} → {}", m.lever.show(m.from), m.lever.show(m.to)))
                    .or_default() += 1;
            }
            let values = if step.moves.len() <= 3 {
                step.moves
                    .iter()
                    .map(|m| format!("{} → {}", m.lever.show(m.from), m.lever.show(m.to)))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                values
                    .into_iter()
                    .map(|(v, n)| format!("{v} (×{n})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            ScheduleRow {
                step: step.number,
                what: if what.is_empty() {
                    "—".to_owned()
                } else {
                    what.join("; ")
                },
                values: if values.is_empty() {
                    "—".to_owned()
                } else {
                    values
                },
                then: if step.bake_seconds == 0 {
                    "—".to_owned()
                } else {
                    format!("bake {}", duration_text(step.bake_seconds))
                },
            }
        })
        .collect()
}

fn plural(kind: &str, n: usize) -> String {
    let noun = match kind {
        "endpointGroup" => "endpoint group",
        "endpoint" => "endpoint",
        "backend" => "backend",
        other => other,
    };
    if n == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

fn count_or_list(addresses: &[meridian_provider::Address]) -> String {
    if addresses.len() <= 3 {
        addresses
            .iter()
            .map(|a| format!("`{a}`"))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        let kinds: std::collections::BTreeSet<&str> =
            addresses.iter().map(|a| a.kind_name()).collect();
        format!(
            "{} objects ({})",
            addresses.len(),
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}

/// Markdown cut to fit one GitHub comment ([`MAX_COMMENT`] characters):
/// cut at a line, open code blocks and `<details>` closed, and a note that
/// says so. Markdown that fits is returned as it is.
pub fn fit_comment(markdown: String) -> String {
    if markdown.chars().count() <= MAX_COMMENT {
        return markdown;
    }
    const NOTE: &str = "\n> [!NOTE]\n> This comment was cut to fit GitHub's limit of 65,536 characters; `--format json` has every change.\n";
    let budget = MAX_COMMENT - NOTE.chars().count() - 64;
    let mut out = String::new();
    let mut used = 0;
    for line in markdown.split_inclusive('\n') {
        let n = line.chars().count();
        if used + n > budget {
            break;
        }
        out.push_str(line);
        used += n;
    }
    if out.lines().filter(|l| l.starts_with("```")).count() % 2 == 1 {
        out.push_str("```\n");
    }
    let open = out.matches("<details>").count();
    let closed = out.matches("</details>").count();
    for _ in closed..open {
        out.push_str("\n</details>\n");
    }
    out.push_str(NOTE);
    out
}

/// A schedule as a Markdown table: step, what moves, values, then.
pub fn schedule_table_markdown(schedule: &crate::plan::schedule::Schedule) -> String {
    let mut out = String::from("| step | what moves | values | then |\n|---:|---|---|---|\n");
    for row in schedule_rows(schedule) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.step,
            md_escape(&row.what),
            md_escape(&row.values),
            row.then
        );
    }
    out
}

/// One line per step of a schedule (summarised like [`schedule_rows`]
/// when a step moves more than a few objects).
pub fn schedule_lines(schedule: &crate::plan::schedule::Schedule) -> Vec<String> {
    schedule
        .steps
        .iter()
        .zip(schedule_rows(schedule))
        .map(|(step, row)| {
            if step.moves.len() + step.creates.len() + step.deletes.len() > 3 {
                let what = row.what.replace('`', "");
                return if step.bake_seconds == 0 {
                    format!("step {}: {what}: {}", step.number, row.values)
                } else {
                    format!(
                        "step {}: {what}: {}; then bake {}",
                        step.number,
                        row.values,
                        duration_text(step.bake_seconds)
                    )
                };
            }
            let mut parts: Vec<String> = step
                .moves
                .iter()
                .map(|m| {
                    format!(
                        "{} {} {} → {}",
                        m.address,
                        m.lever.field(),
                        m.lever.show(m.from),
                        m.lever.show(m.to)
                    )
                })
                .collect();
            parts.extend(step.creates.iter().map(|a| format!("create {a} at 0")));
            parts.extend(step.deletes.iter().map(|a| format!("delete {a} (drained)")));
            if step.bake_seconds == 0 {
                format!("step {}: {}", step.number, parts.join(", "))
            } else {
                format!(
                    "step {}: {}; then bake {}",
                    step.number,
                    parts.join(", "),
                    duration_text(step.bake_seconds)
                )
            }
        })
        .collect()
}

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|")
}

fn plan_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let s = plan.summary;
    let headline = if plan.is_blocked() {
        format!(
            "**meridian plan: blocked by policy** ({} violation(s)); {}",
            plan.violations.len(),
            s.counts()
        )
    } else if plan.is_empty() {
        "**meridian plan: no changes**".to_owned()
    } else {
        format!("**meridian plan:** {}", s.counts())
    };
    let _ = writeln!(out, "{headline}{}\n", held_headline_suffix(plan));
    if !plan.writes.is_empty() {
        let _ = writeln!(out, "{}.\n", writes_text(plan));
    }
    if plan.errored {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> The live world was not fully observed or holds conflicting objects; this plan cannot be applied.\n"
        );
        for gap in &plan.gaps {
            let _ = writeln!(
                out,
                "- {} of `{}`: {}",
                gap.family,
                gap.provider,
                md_escape(&gap.error.to_string())
            );
        }
        for conflict in &plan.conflicts {
            let _ = writeln!(out, "- {}", md_escape(conflict));
        }
        let _ = writeln!(out);
    }
    for note in &plan.notes {
        let _ = writeln!(out, "> note: {}\n", md_escape(note));
    }
    if !plan.violations.is_empty() {
        let _ = writeln!(
            out,
            "| policy | resource | region | location |\n|---|---|---|---|"
        );
        for v in &plan.violations {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | `{}` |",
                v.policy, v.resource, v.region, v.location
            );
        }
        let _ = writeln!(out);
    }
    if let Some(schedule) = &plan.schedule {
        let _ = writeln!(out, "{}\n", schedule_heading(schedule));
        let _ = writeln!(out, "{}", schedule_table_markdown(schedule));
    }
    if plan.changes.len() > LISTED {
        let _ = writeln!(
            out,
            "{} changes, counted by kind, region and field (the first {LISTED} are listed below; `--format json` has every change):\n",
            plan.changes.len()
        );
        let _ = writeln!(out, "{}", change_counts_markdown(&plan.changes));
    }
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "| | resource | changed fields |\n|---|---|---|");
        for change in plan.changes.iter().take(LISTED) {
            let fields: Vec<String> = match change.action {
                Action::Adopt if change.fields.is_empty() => {
                    vec!["(taken over as it is)".to_owned()]
                }
                Action::Update | Action::Adopt => change
                    .fields
                    .iter()
                    .map(|f| {
                        format!(
                            "`{}` {} → {}",
                            f.path,
                            show_value(f.before.as_ref()),
                            show_value(f.after.as_ref())
                        )
                    })
                    .collect(),
                Action::Create => vec!["(new)".to_owned()],
                Action::Delete => vec!["(removed)".to_owned()],
            };
            let _ = writeln!(
                out,
                "| {} | `{}` | {} |",
                change.action.symbol(),
                change.address,
                md_escape(&fields.join("<br>"))
            );
        }
        if plan.changes.len() > LISTED {
            let _ = writeln!(out, "| | … {} more | |", plan.changes.len() - LISTED);
        }
        let _ = writeln!(
            out,
            "\n<details><summary>Details of {}</summary>\n\n```diff",
            if plan.changes.len() > LISTED {
                format!("the first {LISTED} changes")
            } else {
                "every change".to_owned()
            }
        );
        for change in plan.changes.iter().take(LISTED) {
            let _ = writeln!(
                out,
                "{} {}  # {}",
                change.action.symbol(),
                change.address,
                change.reason
            );
            for field in &change.fields {
                let sign = match change.action {
                    Action::Create => "+",
                    Action::Delete => "-",
                    Action::Update | Action::Adopt => "!",
                };
                let _ = writeln!(out, "{sign}     {}", field_line(field, change.action));
            }
        }
        let _ = writeln!(out, "```\n\n</details>");
    }
    out.push_str(&held_markdown(plan));
    let _ = writeln!(
        out,
        "\n<sub>desired state `{}` · observed `{}` · plan format {}</sub>",
        short(&plan.source.digest),
        short(&plan.observed_fingerprint),
        FORMAT_VERSION
    );
    out
}

/// Whether a change reports drift: the updates that only prepare a delete
/// (drain, disable) are part of the delete, not drift of their own.
fn is_drift(plan: &Plan, change: &Change) -> bool {
    change.action != Action::Update
        || !plan
            .changes
            .iter()
            .any(|c| c.action == Action::Delete && c.address == change.address)
}

/// A plan action's word as drift: what the cloud lacks, differs in, or
/// has too much.
fn drift_word(action: &str) -> &'static str {
    match action {
        "create" => "missing",
        "update" => "changed",
        "adopt" => "not yet managed",
        _ => "unexpected",
    }
}

fn drift_kind(change: &Change) -> &'static str {
    match change.action {
        Action::Create => "missing",
        Action::Update => "changed",
        Action::Delete => "unexpected",
        Action::Adopt => "not yet managed",
    }
}

/// The plan as drift sees it: its changes and the differences it does not
/// write (`plan.unwritten`: objects meridian only observes, or whose fields
/// besides their traffic levers it leaves to their owner), one entry per
/// object. A plan without such differences is itself.
pub fn drift_view(plan: &Plan) -> std::borrow::Cow<'_, Plan> {
    if plan.unwritten.is_empty() {
        return std::borrow::Cow::Borrowed(plan);
    }
    let mut view = plan.clone();
    for unwritten in &plan.unwritten {
        let change = &unwritten.change;
        match view
            .changes
            .iter_mut()
            .find(|c| c.address == change.address && c.action == change.action)
        {
            Some(same) => same.fields.extend(change.fields.iter().cloned()),
            None => view.changes.push(change.clone()),
        }
    }
    view.changes.sort_by(|a, b| a.address.cmp(&b.address));
    std::borrow::Cow::Owned(view)
}

/// Renders a drift report: the plan's changes seen as differences of the
/// live world from desired state.
pub fn drift(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Json => {
            let items: Vec<Value> = plan
                .changes
                .iter()
                .filter(|c| is_drift(plan, c))
                .map(|c| {
                    serde_json::json!({
                        "provider": c.provider,
                        "address": c.address,
                        "drift": drift_kind(c),
                        "fields": c.fields.iter().map(|f| serde_json::json!({"path": f.path, "live": f.before, "desired": f.after})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let mut report = serde_json::json!({
                "format_version": FORMAT_VERSION,
                "drifted": !items.is_empty(),
                "complete": plan.complete,
                "observed_fingerprint": plan.observed_fingerprint,
                "source": plan.source,
                "gaps": plan.gaps,
                "resources": items,
            });
            if let (Some(object), false) = (report.as_object_mut(), plan.overridden.is_empty()) {
                object.insert("overridden".to_owned(), held_drift_json(plan));
            }
            if let (Some(object), false) = (report.as_object_mut(), plan.notes.is_empty()) {
                object.insert("notes".to_owned(), serde_json::json!(plan.notes));
            }
            let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Text | Format::Markdown => {
            let markdown = format == Format::Markdown;
            let mut out = String::new();
            let drifted: Vec<&Change> = plan.changes.iter().filter(|c| is_drift(plan, c)).collect();
            if drifted.is_empty() && plan.overridden.is_empty() {
                let _ = writeln!(
                    out,
                    "{}",
                    if markdown {
                        "**meridian drift: none.** The live world matches the desired state."
                    } else {
                        "No drift. The live world matches the desired state."
                    }
                );
            } else if drifted.is_empty() {
                let _ = writeln!(out, "{}", held_only_drift_headline(plan, markdown));
            } else if markdown {
                let _ = writeln!(
                    out,
                    "**meridian drift: {} resource(s) differ from desired state**\n",
                    drifted.len()
                );
                if drifted.len() > LISTED {
                    let _ = writeln!(
                        out,
                        "Counted by drift, kind, region and field; the first {LISTED} are listed below (`--format json` has every one):\n\n| resources | drift | kind | region | fields |\n|---:|---|---|---|---|"
                    );
                    out.push_str(&count_rows(drifted.iter().copied(), true, drift_word));
                    let _ = writeln!(out);
                }
                let _ = writeln!(
                    out,
                    "| resource | drift | field | live | desired |\n|---|---|---|---|---|"
                );
            } else {
                let _ = writeln!(
                    out,
                    "Drift: {} resource(s) differ from desired state.\n",
                    drifted.len()
                );
                if drifted.len() > LISTED {
                    let _ = writeln!(
                        out,
                        "Counted by drift, kind, region and field (the first {LISTED} follow; `--format json` lists every one):"
                    );
                    out.push_str(&count_rows(drifted.iter().copied(), false, drift_word));
                    let _ = writeln!(out);
                }
            }
            let more = drifted.len().saturating_sub(LISTED);
            for change in drifted.into_iter().take(LISTED) {
                match (markdown, change.action) {
                    (true, Action::Update | Action::Adopt) => {
                        for f in &change.fields {
                            let _ = writeln!(
                                out,
                                "| `{}` | changed | `{}` | {} | {} |",
                                change.address,
                                f.path,
                                md_escape(&show_value(f.before.as_ref())),
                                md_escape(&show_value(f.after.as_ref()))
                            );
                        }
                    }
                    (true, _) => {
                        let _ = writeln!(
                            out,
                            "| `{}` | {} | | | |",
                            change.address,
                            drift_kind(change)
                        );
                    }
                    (false, action @ (Action::Update | Action::Adopt)) => {
                        let _ = writeln!(
                            out,
                            "  {} {}  ({}){}",
                            style.paint("33", action.symbol()),
                            change.address,
                            change.provider,
                            if action == Action::Adopt {
                                "\n      exists in the cloud without meridian's ownership marker (apply adopts it)"
                            } else {
                                ""
                            }
                        );
                        for f in &change.fields {
                            let _ = writeln!(
                                out,
                                "      {}: live {}, desired {}",
                                f.path,
                                show_value(f.before.as_ref()),
                                show_value(f.after.as_ref())
                            );
                        }
                    }
                    (false, Action::Create) => {
                        let _ = writeln!(
                            out,
                            "  {} {}  ({})\n      missing from the cloud",
                            style.paint("32", "+"),
                            change.address,
                            change.provider
                        );
                    }
                    (false, Action::Delete) => {
                        let _ = writeln!(
                            out,
                            "  {} {}  ({})\n      managed by meridian but no longer declared",
                            style.paint("31", "-"),
                            change.address,
                            change.provider
                        );
                    }
                }
            }
            if more > 0 {
                let _ = writeln!(
                    out,
                    "{}",
                    if markdown {
                        format!("| … {more} more | | | | |")
                    } else {
                        format!("  … and {more} more (`--format json` lists every one)")
                    }
                );
            }
            out.push_str(&held_drift(plan, markdown, style));
            for gap in &plan.gaps {
                let _ = writeln!(
                    out,
                    "INCOMPLETE: {} of provider `{}` could not be observed: {}",
                    gap.family, gap.provider, gap.error
                );
            }
            for conflict in &plan.conflicts {
                let _ = writeln!(out, "CONFLICT: {conflict}");
            }
            // Notes say, among other things, that an override expired and its
            // changes are now reverted, or that a marker cannot be read.
            for note in &plan.notes {
                let _ = writeln!(out, "note: {note}");
            }
            if markdown { fit_comment(out) } else { out }
        }
    }
}

// ----- break-glass overrides ------------------------------------------------
// Changes held by an active override (`plan.overridden`) are shown apart from
// the changes that will be applied, each with "overridden until <time>".

fn held_summary_line(plan: &Plan) -> String {
    let s = plan.summary;
    let held = plan.overridden.len();
    if plan.is_empty() {
        format!(
            "No changes to apply: {held} change(s) held by break-glass overrides (above) until they end."
        )
    } else {
        format!(
            "Plan: {}; {held} more held by break-glass overrides.",
            s.counts()
        )
    }
}

/// "overridden until T", naming the marked object when it is an ancestor.
fn overridden_until(held: &crate::plan::held::Overridden) -> String {
    if held.address == held.change.address {
        format!("overridden until {}", held.until)
    } else {
        format!(
            "overridden until {} (override on {})",
            held.until, held.address
        )
    }
}

fn held_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if plan.overridden.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{} not applied while their break-glass override lasts:\n",
        style.paint("35", "HELD:")
    );
    for held in &plan.overridden {
        let change = &held.change;
        let _ = writeln!(
            out,
            "  {} {}  ({})",
            style.paint("35", change.action.symbol()),
            style.paint("35", &change.address.to_string()),
            change.provider
        );
        let _ = writeln!(out, "      {}", overridden_until(held));
        for field in &change.fields {
            let _ = writeln!(out, "      {}", field_line(field, change.action));
        }
        let _ = writeln!(
            out,
            "      {}",
            style.paint("2", &format!("# {}", change.reason))
        );
    }
    let _ = writeln!(out);
    out
}

fn held_headline_suffix(plan: &Plan) -> String {
    if plan.overridden.is_empty() {
        String::new()
    } else {
        format!("; {} held by break-glass overrides", plan.overridden.len())
    }
}

fn held_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.overridden.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n**Held by break-glass overrides** (not applied until they end):\n\n| | resource | overridden until | changed fields |\n|---|---|---|---|"
    );
    for held in &plan.overridden {
        let change = &held.change;
        let fields: Vec<String> = change
            .fields
            .iter()
            .map(|f| format!("`{}`", field_line(f, change.action)))
            .collect();
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} |",
            change.action.symbol(),
            change.address,
            md_escape(&overridden_until(held).replacen("overridden until ", "", 1)),
            md_escape(&fields.join("<br>"))
        );
    }
    out
}

/// Held changes that report drift (a drain held with its delete is part
/// of the delete).
fn held_drift_changes(plan: &Plan) -> Vec<&crate::plan::held::Overridden> {
    plan.overridden
        .iter()
        .filter(|held| {
            held.change.action != Action::Update
                || !plan.overridden.iter().any(|other| {
                    other.change.action == Action::Delete
                        && other.change.address == held.change.address
                })
        })
        .collect()
}

fn held_drift_json(plan: &Plan) -> Value {
    Value::Array(
        held_drift_changes(plan)
            .into_iter()
            .map(|held| {
                let c = &held.change;
                serde_json::json!({
                    "provider": c.provider,
                    "address": c.address,
                    "drift": drift_kind(c),
                    "overridden_until": held.until,
                    "override": held.address,
                    "fields": c.fields.iter().map(|f| serde_json::json!({"path": f.path, "live": f.before, "desired": f.after})).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn held_only_drift_headline(plan: &Plan, markdown: bool) -> String {
    let held = held_drift_changes(plan).len();
    if markdown {
        format!(
            "**meridian drift: none to correct.** {held} resource(s) differ from desired state under break-glass overrides, deliberately."
        )
    } else {
        format!(
            "No drift to correct: {held} resource(s) differ from desired state under break-glass overrides, deliberately."
        )
    }
}

fn held_drift(plan: &Plan, markdown: bool, style: Style) -> String {
    let mut out = String::new();
    let held = held_drift_changes(plan);
    if held.is_empty() {
        return out;
    }
    if markdown {
        let _ = writeln!(
            out,
            "\n**Held by break-glass overrides** (not reverted until they end):\n\n| resource | drift | overridden until | field | live | desired |\n|---|---|---|---|---|---|"
        );
    } else {
        let _ = writeln!(
            out,
            "\nHeld by break-glass overrides (not reverted until they end):\n"
        );
    }
    for entry in held {
        let change = &entry.change;
        let until = overridden_until(entry);
        match (markdown, change.action) {
            (true, Action::Update) => {
                for f in &change.fields {
                    let _ = writeln!(
                        out,
                        "| `{}` | changed | {} | `{}` | {} | {} |",
                        change.address,
                        md_escape(until.trim_start_matches("overridden until ")),
                        f.path,
                        md_escape(&show_value(f.before.as_ref())),
                        md_escape(&show_value(f.after.as_ref()))
                    );
                }
            }
            (true, _) => {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | | | |",
                    change.address,
                    drift_kind(change),
                    md_escape(until.trim_start_matches("overridden until "))
                );
            }
            (false, action) => {
                let _ = writeln!(
                    out,
                    "  {} {}  ({})\n      {until}",
                    style.paint("35", action.symbol()),
                    change.address,
                    change.provider
                );
                match action {
                    Action::Update | Action::Adopt => {
                        for f in &change.fields {
                            let _ = writeln!(
                                out,
                                "      {}: live {}, desired {}",
                                f.path,
                                show_value(f.before.as_ref()),
                                show_value(f.after.as_ref())
                            );
                        }
                    }
                    Action::Create => {
                        let _ = writeln!(out, "      missing from the cloud");
                    }
                    Action::Delete => {
                        let _ = writeln!(out, "      managed by meridian but no longer declared");
                    }
                }
            }
        }
    }
    out
}

/// What `apply` held back, for its report: `None` when nothing was held.
pub fn held_back_line(plan: &Plan) -> Option<String> {
    if plan.overridden.is_empty() {
        return None;
    }
    let items: Vec<String> = plan
        .overridden
        .iter()
        .map(|held| {
            format!(
                "{} {}: {}",
                held.change.action.symbol(),
                held.change.address,
                overridden_until(held)
            )
        })
        .collect();
    Some(format!(
        "Held back {} change(s) under break-glass overrides:\n  {}",
        items.len(),
        items.join("\n  ")
    ))
}
