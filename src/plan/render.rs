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
        Action::Update => format!(
            "{}: {} → {}",
            field.path,
            show_value(field.before.as_ref()),
            show_value(field.after.as_ref())
        ),
    }
}

fn summary_line(plan: &Plan) -> String {
    let s = plan.summary;
    if plan.errored && plan.is_empty() {
        "No changes could be planned where the live world was not fully known (see above)."
            .to_owned()
    } else if plan.is_empty() {
        "No changes. The live world matches the desired state.".to_owned()
    } else {
        format!(
            "Plan: {} to create, {} to update, {} to delete.",
            s.create, s.update, s.delete
        )
    }
}

/// Renders a plan.
pub fn plan(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Text => plan_text(plan, style),
        Format::Markdown => plan_markdown(plan),
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
    for change in &plan.changes {
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
    if !plan.changes.is_empty() {
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

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|")
}

fn plan_markdown(plan: &Plan) -> String {
    let mut out = String::new();
    let s = plan.summary;
    let headline = if plan.is_blocked() {
        format!(
            "**meridian plan: blocked by policy** ({} violation(s)); {} to create, {} to update, {} to delete",
            plan.violations.len(),
            s.create,
            s.update,
            s.delete
        )
    } else if plan.is_empty() {
        "**meridian plan: no changes**".to_owned()
    } else {
        format!(
            "**meridian plan:** {} to create, {} to update, {} to delete",
            s.create, s.update, s.delete
        )
    };
    let _ = writeln!(out, "{headline}\n");
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
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "| | resource | changed fields |\n|---|---|---|");
        for change in &plan.changes {
            let fields: Vec<String> = match change.action {
                Action::Update => change
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
        let _ = writeln!(
            out,
            "\n<details><summary>Details of every change</summary>\n\n```diff"
        );
        for change in &plan.changes {
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
                    Action::Update => "!",
                };
                let _ = writeln!(out, "{sign}     {}", field_line(field, change.action));
            }
        }
        let _ = writeln!(out, "```\n\n</details>");
    }
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

fn drift_kind(change: &Change) -> &'static str {
    match change.action {
        Action::Create => "missing",
        Action::Update => "changed",
        Action::Delete => "unexpected",
    }
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
            let report = serde_json::json!({
                "format_version": FORMAT_VERSION,
                "drifted": !items.is_empty(),
                "complete": plan.complete,
                "observed_fingerprint": plan.observed_fingerprint,
                "source": plan.source,
                "gaps": plan.gaps,
                "resources": items,
            });
            let mut text = serde_json::to_string_pretty(&report).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Text | Format::Markdown => {
            let markdown = format == Format::Markdown;
            let mut out = String::new();
            let drifted: Vec<&Change> = plan.changes.iter().filter(|c| is_drift(plan, c)).collect();
            if drifted.is_empty() {
                let _ = writeln!(
                    out,
                    "{}",
                    if markdown {
                        "**meridian drift: none.** The live world matches the desired state."
                    } else {
                        "No drift. The live world matches the desired state."
                    }
                );
            } else if markdown {
                let _ = writeln!(
                    out,
                    "**meridian drift: {} resource(s) differ from desired state**\n\n| resource | drift | field | live | desired |\n|---|---|---|---|---|",
                    drifted.len()
                );
            } else {
                let _ = writeln!(
                    out,
                    "Drift: {} resource(s) differ from desired state.\n",
                    drifted.len()
                );
            }
            for change in drifted {
                match (markdown, change.action) {
                    (true, Action::Update) => {
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
                    (false, Action::Update) => {
                        let _ = writeln!(
                            out,
                            "  {} {}  ({})",
                            style.paint("33", "~"),
                            change.address,
                            change.provider
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
            out
        }
    }
}
