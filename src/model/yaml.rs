//! YAML documents as trees of positioned nodes.
//!
//! meridian needs the line and column of every value to report errors the
//! way users can act on them, so it builds its own small tree from the
//! `saphyr-parser` event stream instead of deserialising straight into
//! types. Plain scalars are resolved with the YAML 1.2 core schema (so
//! `no` is a string, not `false`); quoted scalars are always strings.
//! Duplicate keys are errors, not "last one wins".

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A value in the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

/// A value with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub value: Value,
}

/// A YAML syntax error, or a document beyond one of meridian's input
/// limits ([`MAX_FILE_BYTES`], [`MAX_DEPTH`], [`MAX_EXPANDED_VALUES`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
    /// Whether the text is well-formed YAML that exceeds a limit (the
    /// message then names the limit) rather than malformed.
    pub limit: bool,
}

impl Value {
    /// The type's name as users know it, with the value for scalars.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => format!("boolean {b}"),
            Value::Int(i) => format!("integer {i}"),
            Value::Float(x) => format!("number {x}"),
            Value::Str(s) => format!("string \"{s}\""),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

impl Node {
    /// The value of `key` in a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node as JSON, for typed deserialisation after the schema check.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Records the position of every value under `path` (`spec.listeners[0].name`).
    pub fn index_positions(&self, path: &str, out: &mut HashMap<String, Pos>) {
        out.insert(path.to_owned(), self.pos);
        match &self.value {
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    item.index_positions(&format!("{path}[{i}]"), out);
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let child = join(path, &key_text(k));
                    v.index_positions(&child, out);
                }
            }
            _ => {}
        }
    }
}

/// Joins a field name onto a path.
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// The text of a mapping key.
pub fn key_text(key: &Node) -> String {
    match &key.value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Seq(_) | Value::Map(_) => "<complex key>".to_owned(),
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(i);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return Value::Int(i);
    }
    let looks_numeric = !digits.is_empty()
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits.as_bytes()[0] != b'e'
        && digits.as_bytes()[0] != b'E';
    if looks_numeric && let Ok(x) = text.parse::<f64>() {
        return Value::Float(x);
    }
    Value::Str(text.to_owned())
}

/// A mapping being built: explicit entries, entries brought in by merge keys
/// (`<<`, lower priority), the key waiting for its value, and whether that
/// key is a plain `<<`.
struct MapFrame {
    pos: Pos,
    anchor: usize,
    entries: Vec<(Node, Node)>,
    merged: Vec<(Node, Node)>,
    pending_key: Option<Node>,
    pending_merge: bool,
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(MapFrame),
}

/// Most values a document may hold once aliases are expanded: enough for any
/// real desired state, small enough that a few hundred bytes of nested
/// aliases ("billion laughs") cannot exhaust memory.
pub const MAX_EXPANDED_VALUES: usize = 100_000;

/// Most levels of collections (mappings and lists, block or flow style,
/// counting the document's own mapping as the first) a document may nest.
/// The deepest real document nests about eight; the limit keeps every
/// recursive walk of the tree (schema check, typing, positions) far from
/// the stack's end, whatever a file holds, aliases included.
pub const MAX_DEPTH: usize = 64;

/// Largest desired-state file meridian reads, in bytes (4 MiB): the whole
/// example fleet is a few kilobytes. Checked before a file is read or
/// parsed: from the file system's length for a folder, from the object
/// header for a Git blob.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Most `*.yaml` / `*.yml` files one desired state may hold, in a folder
/// or at a Git revision. The reference fleet (16,500 objects) fits in one
/// file; even a file per object of a fleet six times larger stays below.
pub const MAX_FILES: usize = 100_000;

/// Most bytes of YAML one desired state may hold, all its files together
/// (256 MiB): each file is bounded by [`MAX_FILE_BYTES`], and this bounds
/// their sum, so a folder of many files just under the per-file limit
/// cannot exhaust memory either. The 165,000-object fleet of the scaling
/// benchmark is about 20 MiB.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;

/// What a desired state's files add up to while they are read, against
/// [`MAX_FILES`] and [`MAX_TOTAL_BYTES`].
#[derive(Debug, Default)]
pub struct Totals {
    files: usize,
    bytes: u64,
}

impl Totals {
    /// Counts one more file of `bytes` bytes, checked before it is read;
    /// the refusal when it would cross a limit.
    pub fn add(&mut self, bytes: u64) -> Result<(), String> {
        if self.files >= MAX_FILES {
            return Err(format!(
                "a desired state may hold at most {MAX_FILES} YAML files; this is one more: merge files, or split the fleet across repositories or folders"
            ));
        }
        self.check_bytes(self.files, bytes)?;
        self.files += 1;
        self.bytes += bytes;
        Ok(())
    }

    /// Counts `bytes` more of the last file counted (a file that grew
    /// between its length being taken and its content read).
    pub fn grew(&mut self, bytes: u64) -> Result<(), String> {
        self.check_bytes(self.files.saturating_sub(1), bytes)?;
        self.bytes += bytes;
        Ok(())
    }

    fn check_bytes(&self, before: usize, bytes: u64) -> Result<(), String> {
        if self.bytes + bytes > MAX_TOTAL_BYTES {
            // Exact counts: rounded, a total just past the limit would
            // read as the limit itself.
            return Err(format!(
                "a desired state may hold at most {} ({MAX_TOTAL_BYTES} bytes) of YAML, all files together; the {} files before this one hold {} bytes and it adds {}: split the fleet across repositories or folders",
                size_text(MAX_TOTAL_BYTES),
                before,
                self.bytes,
                if bytes == 1 {
                    "1 byte".to_owned()
                } else {
                    format!("{bytes} bytes")
                }
            ));
        }
        Ok(())
    }
}

/// A byte count as users read it: `4 MiB`, `95.4 MiB`, `512 bytes`, `1 GiB`.
pub fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        if bytes.is_multiple_of(GIB) {
            format!("{} GiB", bytes / GIB)
        } else {
            format!("{:.2} GiB", bytes as f64 / GIB as f64)
        }
    } else if bytes == 1 {
        "1 byte".to_owned()
    } else if bytes < 1024 {
        format!("{bytes} bytes")
    } else if bytes < MIB {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    }
}

/// The refusal of a file of `bytes` bytes, larger than [`MAX_FILE_BYTES`].
pub fn too_large(bytes: u64) -> String {
    format!(
        "files may be at most {}; this one is {}: split it into several files",
        size_text(MAX_FILE_BYTES),
        size_text(bytes)
    )
}

fn count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| count(k) + count(v)).sum(),
        _ => 0,
    }
}

/// Levels of collections in `node` (0 for a scalar). Only called on nodes
/// already within [`MAX_DEPTH`], so the recursion is bounded.
fn depth(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| depth(k).max(depth(v)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

fn too_deep(pos: Pos) -> SyntaxError {
    SyntaxError {
        pos,
        message: format!(
            "documents may nest at most {MAX_DEPTH} levels of mappings and lists; this one nests deeper here"
        ),
        limit: true,
    }
}

/// Parses every document of a YAML stream. Empty documents are skipped.
/// A text larger than [`MAX_FILE_BYTES`], nesting deeper than [`MAX_DEPTH`]
/// or expanding to more than [`MAX_EXPANDED_VALUES`] is refused, with the
/// position where the limit was crossed.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(SyntaxError {
            pos: Pos { line: 1, col: 1 },
            message: too_large(text.len() as u64),
            limit: true,
        });
    }
    let mut documents = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored nodes with their size and depth, for the limits on aliases.
    let mut anchors: HashMap<usize, (Node, usize, usize)> = HashMap::new();
    let mut expanded = 0usize;
    let mut root: Option<Node> = None;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_owned(),
            limit: false,
        })?;
        let pos = pos_of(&span);
        let finished: Option<(Node, usize)> = match event {
            Event::DocumentStart(_) => {
                root = None;
                None
            }
            Event::DocumentEnd => {
                if let Some(node) = root.take()
                    && node.value != Value::Null
                {
                    documents.push(node);
                }
                None
            }
            Event::Scalar(value, style, anchor, tag) => {
                if let Some(Frame::Map(frame)) = stack.last_mut()
                    && frame.pending_key.is_none()
                    && style == ScalarStyle::Plain
                    && value == "<<"
                {
                    frame.pending_merge = true;
                }
                let forced_string = tag
                    .as_ref()
                    .is_some_and(|t| t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
                    || tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !forced_string {
                    resolve_plain(&value)
                } else {
                    Value::Str(value.into_owned())
                };
                Some((Node { pos, value }, anchor))
            }
            Event::Alias(id) => {
                let (node, size, levels) =
                    anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                        pos,
                        message: "alias refers to an unknown anchor".to_owned(),
                        limit: false,
                    })?;
                expanded += size;
                if expanded > MAX_EXPANDED_VALUES {
                    return Err(SyntaxError {
                        pos,
                        message: format!(
                            "aliases expand to more than {MAX_EXPANDED_VALUES} values; refusing a document that multiplies itself"
                        ),
                        limit: true,
                    });
                }
                // An alias pastes its anchor's whole tree here: nested
                // aliases could otherwise build any depth from short lines.
                if stack.len() + levels > MAX_DEPTH {
                    return Err(too_deep(pos));
                }
                Some((Node { pos, ..node }, 0))
            }
            Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(pos));
                }
                stack.push(Frame::Seq(pos, anchor, Vec::new()));
                None
            }
            Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(pos));
                }
                stack.push(Frame::Map(MapFrame {
                    pos,
                    anchor,
                    entries: Vec::new(),
                    merged: Vec::new(),
                    pending_key: None,
                    pending_merge: false,
                }));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(pos, anchor, items)) => Some((
                    Node {
                        pos,
                        value: Value::Seq(items),
                    },
                    anchor,
                )),
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(mut frame)) => {
                    // Explicit keys win over merged ones.
                    for (k, v) in std::mem::take(&mut frame.merged) {
                        if !frame.entries.iter().any(|(e, _)| e.value == k.value) {
                            frame.entries.push((k, v));
                        }
                    }
                    Some((
                        Node {
                            pos: frame.pos,
                            value: Value::Map(frame.entries),
                        },
                        frame.anchor,
                    ))
                }
                _ => None,
            },
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            let size = count(&node);
            let levels = depth(&node);
            anchors.insert(anchor, (node.clone(), size, levels));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(frame)) => match frame.pending_key.take() {
                None => frame.pending_key = Some(node),
                Some(key) if frame.pending_merge => {
                    frame.pending_merge = false;
                    // YAML merge key: a mapping, or a list of mappings where
                    // earlier ones win; anything else is an error, not ignored.
                    let maps = match node.value {
                        Value::Map(entries) => vec![entries],
                        Value::Seq(items) => {
                            let mut maps = Vec::new();
                            for item in items {
                                match item.value {
                                    Value::Map(entries) => maps.push(entries),
                                    other => {
                                        return Err(SyntaxError {
                                            pos: item.pos,
                                            message: format!(
                                                "the merge key `<<` takes mappings; this list holds {}",
                                                other.describe()
                                            ),
                                            limit: false,
                                        });
                                    }
                                }
                            }
                            maps
                        }
                        other => {
                            return Err(SyntaxError {
                                pos: key.pos,
                                message: format!(
                                    "the merge key `<<` takes a mapping or a list of mappings, got {}",
                                    other.describe()
                                ),
                                limit: false,
                            });
                        }
                    };
                    for entries in maps {
                        for (k, v) in entries {
                            if !frame.merged.iter().any(|(e, _)| e.value == k.value) {
                                frame.merged.push((k, v));
                            }
                        }
                    }
                }
                Some(key) => {
                    if frame.entries.iter().any(|(k, _)| k.value == key.value) {
                        return Err(SyntaxError {
                            pos: key.pos,
                            message: format!("duplicate key `{}` in one mapping", key_text(&key)),
                            limit: false,
                        });
                    }
                    frame.entries.push((key, node));
                }
            },
        }
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_point_at_values() {
        let docs = parse_documents("a: 1\nb:\n  - x\n  - 'y'\n").expect("parses");
        let b = docs[0].get("b").expect("b");
        assert_eq!(b.pos, Pos { line: 3, col: 3 });
        let Value::Seq(items) = &b.value else {
            panic!("seq")
        };
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert_eq!(
            docs[0].get("a").map(|n| n.pos),
            Some(Pos { line: 1, col: 4 })
        );
    }

    #[test]
    fn core_schema_resolution() {
        let docs =
            parse_documents("a: 0\nb: 0.5\nc: no\nd: '1'\ne: true\nf: ~\ng: 1e3\nh: 10.0.0.0/8\n")
                .expect("parses");
        let get = |k: &str| docs[0].get(k).map(|n| n.value.clone());
        assert_eq!(get("a"), Some(Value::Int(0)));
        assert_eq!(get("b"), Some(Value::Float(0.5)));
        assert_eq!(get("c"), Some(Value::Str("no".into())));
        assert_eq!(get("d"), Some(Value::Str("1".into())));
        assert_eq!(get("e"), Some(Value::Bool(true)));
        assert_eq!(get("f"), Some(Value::Null));
        assert_eq!(get("g"), Some(Value::Float(1000.0)));
        assert_eq!(get("h"), Some(Value::Str("10.0.0.0/8".into())));
    }

    #[test]
    fn totals_allow_exactly_the_limits_and_refuse_the_file_past_them() {
        let mut totals = Totals::default();
        for _ in 0..MAX_TOTAL_BYTES / MAX_FILE_BYTES {
            totals.add(MAX_FILE_BYTES).expect("within the total");
        }
        let refused = totals.add(1).expect_err("one byte past the total");
        assert_eq!(
            refused,
            "a desired state may hold at most 256 MiB (268435456 bytes) of YAML, all files together; the 64 files before this one hold 268435456 bytes and it adds 1 byte: split the fleet across repositories or folders"
        );
        // Empty files count too.
        let mut totals = Totals::default();
        for _ in 0..MAX_FILES {
            totals.add(0).expect("within the count");
        }
        let refused = totals.add(0).expect_err("one file past the count");
        assert!(refused.starts_with("a desired state may hold at most 100000 YAML files"));
        // A refusal counts nothing: the next file is refused the same way.
        assert_eq!(totals.add(0).expect_err("still past"), refused);
    }

    #[test]
    fn several_documents_and_empty_ones() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n").expect("parses");
        assert_eq!(docs.len(), 2);
    }

    #[test]
    fn duplicate_keys_are_errors_with_position() {
        let error = parse_documents("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(error.pos, Pos { line: 3, col: 1 });
    }

    #[test]
    fn merge_keys_follow_the_spec() {
        let text = "base: &b {region: eu-central-1, trafficDial: 0}\nother: &o {weight: 5}\nlist:\n  - <<: [*b, *o]\n    region: us-east-1\n";
        let docs = parse_documents(text).expect("parses");
        let list = docs[0].get("list").expect("list");
        let Value::Seq(items) = &list.value else {
            panic!("seq")
        };
        let item = &items[0];
        assert_eq!(
            item.get("region").map(|n| n.value.clone()),
            Some(Value::Str("us-east-1".into())),
            "explicit keys override merged ones"
        );
        assert_eq!(
            item.get("trafficDial").map(|n| n.value.clone()),
            Some(Value::Int(0)),
            "a list of merged mappings is merged"
        );
        assert_eq!(
            item.get("weight").map(|n| n.value.clone()),
            Some(Value::Int(5))
        );
        assert!(
            parse_documents("a:\n  <<: hello\n").is_err(),
            "merging a scalar is an error"
        );
        let quoted = parse_documents("a:\n  \"<<\": {x: 1}\n").expect("parses");
        assert!(
            quoted[0].get("a").and_then(|a| a.get("<<")).is_some(),
            "a quoted << is an ordinary key"
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let error = parse_documents(&text).expect_err("refused");
        assert!(
            error.message.contains("aliases expand to more than"),
            "{error:?}"
        );
        assert!(error.limit, "{error:?}");
        // `*a3` stands for 11,111 values: the lines before expand to 12,330,
        // so the eighth alias of line 5 crosses 100,000, at column 45.
        assert_eq!(error.pos, Pos { line: 5, col: 45 }, "{error:?}");
    }

    fn nested(levels: usize, flow: bool) -> String {
        if flow {
            format!("a: {}1{}\n", "[".repeat(levels - 1), "]".repeat(levels - 1))
        } else {
            let mut text = String::new();
            for level in 0..levels {
                text.push_str(&"  ".repeat(level));
                text.push_str(&format!("k{level}:\n"));
            }
            text.push_str(&"  ".repeat(levels));
            text.push_str("- x\n");
            text
        }
    }

    #[test]
    fn nesting_is_limited_in_block_and_flow_style() {
        for flow in [false, true] {
            // `levels` counts the document's mapping: MAX_DEPTH is allowed.
            let deepest = if flow { MAX_DEPTH } else { MAX_DEPTH - 1 };
            parse_documents(&nested(deepest, flow)).expect("at the limit");
            let error = parse_documents(&nested(deepest + 1, flow)).expect_err("too deep");
            assert!(error.limit, "{error:?}");
            assert!(
                error
                    .message
                    .contains(&format!("documents may nest at most {MAX_DEPTH} levels")),
                "{error:?}"
            );
            if flow {
                assert_eq!(
                    error.pos,
                    Pos {
                        line: 1,
                        col: 4 + MAX_DEPTH - 1
                    },
                    "{error:?}"
                );
            } else {
                assert_eq!(error.pos.line, MAX_DEPTH + 1, "{error:?}");
            }
        }
    }

    #[test]
    fn aliases_cannot_build_depth_from_short_lines() {
        // Each line nests the previous anchor 20 levels deeper: four lines
        // hold few values but would nest 80 levels.
        let wrap = |inner: &str| format!("{}{inner}{}", "[".repeat(20), "]".repeat(20));
        let mut text = format!("a0: &a0 {}\n", wrap("x"));
        for i in 1..4 {
            text.push_str(&format!("a{i}: &a{i} {}\n", wrap(&format!("*a{}", i - 1))));
        }
        let error = parse_documents(&text).expect_err("too deep");
        assert!(
            error.message.contains("documents may nest at most"),
            "{error:?}"
        );
        assert_eq!(error.pos.line, 4, "{error:?}");
    }

    #[test]
    fn oversized_text_is_refused_before_parsing() {
        let text = format!("a: \"{}\"\n", "x".repeat(MAX_FILE_BYTES as usize));
        let error = parse_documents(&text).expect_err("too large");
        assert!(error.limit);
        assert_eq!(error.pos, Pos { line: 1, col: 1 });
        assert!(
            error
                .message
                .starts_with("files may be at most 4 MiB; this one is 4.0 MiB"),
            "{error:?}"
        );
        assert_eq!(size_text(100_000_000), "95.4 MiB");
        assert_eq!(size_text(512), "512 bytes");
    }

    #[test]
    fn malformed_yaml_reports_where() {
        let error = parse_documents("a: [1, 2\nb: 3\n").expect_err("malformed");
        assert!(error.pos.line >= 1, "{error:?}");
    }
}
