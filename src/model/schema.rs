//! The JSON Schema of the document format, and the structural check.
//!
//! Schemas are generated from the types in [`super::raw`], so the format has
//! one definition. The structural check walks a positioned YAML tree against
//! the generated schema and reports every problem at once (serde stops at the
//! first), each with the position and field path of the offending value and
//! what would be allowed. It understands the subset of JSON Schema that
//! `schemars` emits for our types.

use serde_json::{Map, Value as Json, json};

use super::raw::{
    BackendServiceDocSpec, ClientPopulationSpec, DataResidencyPolicySpec, Document,
    GlobalAcceleratorSpec, HealthCheckDocSpec, ProviderSpec, TrafficPolicySpec,
    TransitGatewayMeshSpec, UrlMapDocSpec,
};
use crate::model::yaml::{Node, Pos, Value, join, key_text};

/// One structural problem.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaIssue {
    /// Where.
    pub pos: Pos,
    /// Field path.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
    /// Whether the document cannot be typed at all (unknown or missing
    /// fields, wrong types). A value merely out of range is not blocking: the
    /// document's other rules can still be checked and reported.
    pub blocking: bool,
}

/// The generated schema of one kind's whole document.
pub fn kind_schema(kind: &str) -> Option<Json> {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = match kind {
        "Provider" => generator.root_schema_for::<Document<ProviderSpec>>(),
        "GlobalAccelerator" => generator.root_schema_for::<Document<GlobalAcceleratorSpec>>(),
        "BackendService" => generator.root_schema_for::<Document<BackendServiceDocSpec>>(),
        "HealthCheck" => generator.root_schema_for::<Document<HealthCheckDocSpec>>(),
        "UrlMap" => generator.root_schema_for::<Document<UrlMapDocSpec>>(),
        "TransitGatewayMesh" => generator.root_schema_for::<Document<TransitGatewayMeshSpec>>(),
        "TrafficPolicy" => generator.root_schema_for::<Document<TrafficPolicySpec>>(),
        "DataResidencyPolicy" => generator.root_schema_for::<Document<DataResidencyPolicySpec>>(),
        "ClientPopulation" => generator.root_schema_for::<Document<ClientPopulationSpec>>(),
        _ => return None,
    };
    let mut schema = schema.to_value();
    if let Some(kind_property) = schema.pointer_mut("/properties/kind") {
        *kind_property = json!({"const": kind, "description": "The document kind."});
    }
    Some(schema)
}

/// The committed editor schema: one file covering every kind, selecting the
/// kind's definition by the `kind` field.
pub fn editor_schema() -> Json {
    let mut defs = Map::new();
    let mut branches = Vec::new();
    for kind in super::raw::KINDS {
        let Some(mut schema) = kind_schema(kind) else {
            continue;
        };
        if let Some(Json::Object(kind_defs)) =
            schema.as_object_mut().and_then(|s| s.remove("$defs"))
        {
            for (name, def) in kind_defs {
                defs.insert(name, def);
            }
        }
        if let Some(object) = schema.as_object_mut() {
            object.remove("$schema");
            object.insert("title".to_owned(), json!(kind));
        }
        defs.insert(kind.to_owned(), schema);
        branches.push(json!({
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {"$ref": format!("#/$defs/{kind}")}
        }));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://meridian.dev/schemas/v1alpha1/desired-state.json",
        "title": "meridian desired state (meridian.dev/v1alpha1)",
        "description": "One YAML document of a meridian desired-state repository. Generated from the model by `cargo run -- schema`; do not edit.",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "kind": {"enum": super::raw::KINDS}
        },
        "allOf": branches,
        "$defs": defs,
    })
}

/// Checks a document node against a kind's schema.
pub fn check(node: &Node, schema: &Json) -> Vec<SchemaIssue> {
    let mut checker = Checker {
        root: schema,
        issues: Vec::new(),
    };
    checker.check(node, schema, "");
    checker.issues
}

struct Checker<'a> {
    root: &'a Json,
    issues: Vec<SchemaIssue>,
}

fn type_name(t: &str) -> &str {
    match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "null",
        other => other,
    }
}

fn matches_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => matches!(value, Value::Map(_)),
        "array" => matches!(value, Value::Seq(_)),
        "string" => matches!(value, Value::Str(_)),
        "integer" => matches!(value, Value::Int(_)),
        "number" => matches!(value, Value::Int(_) | Value::Float(_)),
        "boolean" => matches!(value, Value::Bool(_)),
        "null" => matches!(value, Value::Null),
        _ => true,
    }
}

fn scalar_json(value: &Value) -> Option<Json> {
    match value {
        Value::Str(s) => Some(json!(s)),
        Value::Int(i) => Some(json!(i)),
        Value::Bool(b) => Some(json!(b)),
        Value::Float(x) => Some(json!(x)),
        _ => None,
    }
}

fn show(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca.eq_ignore_ascii_case(cb) {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

fn looks_like_secret(field: &str) -> bool {
    let lower = field.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "accesskey",
        "credential",
        "privatekey",
        "apikey",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

impl<'a> Checker<'a> {
    fn issue(&mut self, pos: Pos, path: &str, message: String) {
        self.issues.push(SchemaIssue {
            pos,
            path: path.to_owned(),
            message,
            blocking: true,
        });
    }

    fn resolve(&self, schema: &'a Json) -> &'a Json {
        let mut current = schema;
        for _ in 0..16 {
            match current.get("$ref").and_then(Json::as_str) {
                Some(reference) => {
                    let pointer = reference.trim_start_matches('#');
                    match self.root.pointer(pointer) {
                        Some(target) => current = target,
                        None => return current,
                    }
                }
                None => return current,
            }
        }
        current
    }

    fn enum_values(&self, schema: &'a Json) -> Option<Vec<Json>> {
        let schema = self.resolve(schema);
        if let Some(values) = schema.get("enum").and_then(Json::as_array) {
            return Some(values.clone());
        }
        if let Some(value) = schema.get("const") {
            return Some(vec![value.clone()]);
        }
        let alternatives = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Json::as_array)?;
        let mut values = Vec::new();
        for alternative in alternatives {
            values.extend(self.enum_values(alternative)?);
        }
        Some(values)
    }

    fn check(&mut self, node: &Node, schema: &'a Json, path: &str) {
        let schema = self.resolve(schema);
        if let Some(values) = self.enum_values(schema) {
            let matches = scalar_json(&node.value).is_some_and(|v| values.contains(&v));
            if !matches {
                let allowed: Vec<String> = values.iter().map(show).collect();
                self.issue(
                    node.pos,
                    path,
                    format!(
                        "must be one of: {}; got {}",
                        allowed.join(", "),
                        node.value.describe()
                    ),
                );
            }
            return;
        }
        if let Some(alternatives) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            let allows_null = alternatives
                .iter()
                .any(|a| self.resolve(a).get("type").and_then(Json::as_str) == Some("null"));
            if node.value == Value::Null && allows_null {
                return;
            }
            let non_null: Vec<&Json> = alternatives
                .iter()
                .filter(|a| self.resolve(a).get("type").and_then(Json::as_str) != Some("null"))
                .collect();
            if let [only] = non_null.as_slice() {
                self.check(node, only, path);
            } else {
                let mut best: Option<Vec<SchemaIssue>> = None;
                for alternative in non_null {
                    let mut nested = Checker {
                        root: self.root,
                        issues: Vec::new(),
                    };
                    nested.check(node, alternative, path);
                    if nested.issues.is_empty() {
                        return;
                    }
                    if best.as_ref().is_none_or(|b| nested.issues.len() < b.len()) {
                        best = Some(nested.issues);
                    }
                }
                self.issues.extend(best.unwrap_or_default());
            }
            return;
        }
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Json::String(t) => vec![t.as_str()],
                Json::Array(ts) => ts.iter().filter_map(Json::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.is_empty() && !allowed.iter().any(|t| matches_type(&node.value, t)) {
                let wanted: Vec<&str> = allowed
                    .iter()
                    .filter(|t| **t != "null")
                    .map(|t| type_name(t))
                    .collect();
                self.issue(
                    node.pos,
                    path,
                    format!(
                        "expected {}, got {}",
                        wanted.join(" or "),
                        node.value.describe()
                    ),
                );
                return;
            }
        }
        match &node.value {
            Value::Map(entries) => self.check_object(node, entries, schema, path),
            Value::Seq(items) => {
                if let Some(items_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, items_schema, &format!("{path}[{i}]"));
                    }
                }
            }
            Value::Int(_) | Value::Float(_) => self.check_range(node, schema, path),
            _ => {}
        }
    }

    fn check_range(&mut self, node: &Node, schema: &Json, path: &str) {
        let number = match node.value {
            Value::Int(i) => i as f64,
            Value::Float(x) => x,
            _ => return,
        };
        let minimum = schema.get("minimum").and_then(Json::as_f64);
        let maximum = schema.get("maximum").and_then(Json::as_f64);
        let below = minimum.is_some_and(|m| number < m);
        let above = maximum.is_some_and(|m| number > m);
        if below || above || number.is_nan() {
            let range = match (minimum, maximum) {
                (Some(lo), Some(hi)) => format!("from {lo} to {hi}"),
                (Some(lo), None) => format!("at least {lo}"),
                (None, Some(hi)) => format!("at most {hi}"),
                (None, None) => "a number".to_owned(),
            };
            self.issue(
                node.pos,
                path,
                format!(
                    "must be {range}, got {}",
                    node.value
                        .describe()
                        .trim_start_matches("integer ")
                        .trim_start_matches("number ")
                ),
            );
            if let Some(last) = self.issues.last_mut() {
                last.blocking = false;
            }
        }
    }

    fn check_object(
        &mut self,
        node: &Node,
        entries: &[(Node, Node)],
        schema: &'a Json,
        path: &str,
    ) {
        let properties = schema.get("properties").and_then(Json::as_object);
        let additional = schema.get("additionalProperties");
        for (key, value) in entries {
            let name = key_text(key);
            let field_path = join(path, &name);
            if !matches!(key.value, Value::Str(_)) {
                self.issue(
                    key.pos,
                    &field_path,
                    format!("keys must be strings, got {}", key.value.describe()),
                );
                continue;
            }
            match properties.and_then(|p| p.get(&name)) {
                Some(property) => self.check(value, property, &field_path),
                None => match additional {
                    Some(Json::Bool(false)) => {
                        let known: Vec<&String> =
                            properties.map(|p| p.keys().collect()).unwrap_or_default();
                        let mut message = format!("unknown field `{name}`");
                        if let Some(closest) = known
                            .iter()
                            .filter(|k| distance(k, &name) <= 2)
                            .min_by_key(|k| distance(k, &name))
                        {
                            message.push_str(&format!(" (did you mean `{closest}`?)"));
                        }
                        if looks_like_secret(&name) {
                            message.push_str("; credentials never belong in Git: meridian reads them from the environment, profiles or instance roles");
                        }
                        let names: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                        message.push_str(&format!("; allowed fields: {}", names.join(", ")));
                        self.issue(key.pos, &field_path, message);
                    }
                    Some(Json::Object(_)) => {
                        if let Some(additional) = additional {
                            self.check(value, additional, &field_path);
                        }
                    }
                    _ => {}
                },
            }
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for field in required.iter().filter_map(Json::as_str) {
                if node.get(field).is_none() {
                    self.issue(
                        node.pos,
                        &join(path, field),
                        format!("missing required field `{field}`"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::yaml::parse_documents;

    fn issues(kind: &str, text: &str) -> Vec<SchemaIssue> {
        let docs = parse_documents(text).expect("yaml");
        check(&docs[0], &kind_schema(kind).expect("kind"))
    }

    #[test]
    fn reports_every_problem_with_positions() {
        let found = issues(
            "DataResidencyPolicy",
            "apiVersion: meridian.dev/v1\nkind: DataResidencyPolicy\nmetadata: {name: x}\nspec:\n  dataClassification: pii\n  blokedRegions: []\n",
        );
        let paths: Vec<&str> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "apiVersion",
                "spec.dataClassification",
                "spec.blokedRegions"
            ],
            "{found:?}"
        );
        assert!(
            found[2].message.contains("did you mean `blockedRegions`"),
            "{}",
            found[2].message
        );
        assert_eq!(found[1].pos, Pos { line: 5, col: 23 });
    }

    #[test]
    fn ranges_come_from_the_model() {
        let found = issues(
            "GlobalAccelerator",
            "apiVersion: meridian.dev/v1alpha1\nkind: GlobalAccelerator\nmetadata: {name: x}\nspec:\n  provider: p\n  listeners:\n    - name: a\n      protocol: TCP\n      portRanges: [{from: 0, to: 443}]\n      endpointGroups:\n        - region: us-east-1\n          trafficDial: 101\n",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].path, "spec.listeners[0].portRanges[0].from");
        assert_eq!(
            found[1].path,
            "spec.listeners[0].endpointGroups[0].trafficDial"
        );
        assert!(
            found[1].message.contains("from 0 to 100"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn editor_schema_covers_every_kind() {
        let schema = editor_schema();
        for kind in super::super::raw::KINDS {
            assert!(
                schema.pointer(&format!("/$defs/{kind}")).is_some(),
                "{kind}"
            );
        }
    }
}
