//! The desired-state model: loading, structural checks and validation.
//!
//! Parse, then validate offline, then touch the network: this module turns
//! files into a [`DesiredState`] or into every [`Diagnostic`] at once, and
//! never needs credentials or a network. Nothing downstream sees YAML.

pub mod raw;
pub mod regions;
pub mod schema;
pub mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::yaml::{self, Node, Pos, Value};
use raw::{
    BackendServiceDocSpec, DataResidencyPolicySpec, Document, GlobalAcceleratorSpec,
    HealthCheckDocSpec, ProviderSpec, TrafficPolicySpec, TransitGatewayMeshSpec, UrlMapDocSpec,
};

/// One problem with the desired state, pointing at its source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// File, as given (relative to the working directory or repository).
    pub file: String,
    /// Position in the file.
    pub pos: Pos,
    /// Field path inside the document, e.g. `spec.listeners[0].name`.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.pos, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.pos, self.path, self.message
            )
        }
    }
}

/// A desired-state file's content.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path shown in diagnostics.
    pub path: String,
    /// Content.
    pub text: String,
}

/// A typed document with where it came from.
#[derive(Debug, Clone)]
pub struct Located<S> {
    /// File it was read from.
    pub file: Arc<str>,
    /// Position of the document's first line.
    pub pos: Pos,
    /// Position of every field, by path.
    pub positions: Arc<HashMap<String, Pos>>,
    /// The document.
    pub doc: Document<S>,
}

impl<S> Located<S> {
    /// The document's `metadata.name`.
    pub fn name(&self) -> &str {
        &self.doc.metadata.name
    }

    /// The position of `path`, or of its nearest ancestor that exists.
    pub fn at(&self, path: &str) -> Pos {
        let mut current = path.to_owned();
        loop {
            if let Some(pos) = self.positions.get(&current) {
                return *pos;
            }
            match current.rfind(['.', '[']) {
                Some(cut) => current.truncate(cut),
                None => return self.pos,
            }
        }
    }

    /// A diagnostic about `path` in this document.
    pub fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            pos: self.at(path),
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// The validated desired state.
#[derive(Debug, Clone, Default)]
pub struct DesiredState {
    /// `Provider` documents.
    pub providers: Vec<Located<ProviderSpec>>,
    /// `GlobalAccelerator` documents.
    pub accelerators: Vec<Located<GlobalAcceleratorSpec>>,
    /// `HealthCheck` documents.
    pub health_checks: Vec<Located<HealthCheckDocSpec>>,
    /// `BackendService` documents.
    pub backend_services: Vec<Located<BackendServiceDocSpec>>,
    /// `UrlMap` documents.
    pub url_maps: Vec<Located<UrlMapDocSpec>>,
    /// `TransitGatewayMesh` documents.
    pub meshes: Vec<Located<TransitGatewayMeshSpec>>,
    /// `TrafficPolicy` documents.
    pub traffic_policies: Vec<Located<TrafficPolicySpec>>,
    /// `DataResidencyPolicy` documents.
    pub residency_policies: Vec<Located<DataResidencyPolicySpec>>,
    /// SHA-256 over every file's path and content, hex.
    pub digest: String,
    /// Files read.
    pub files: Vec<String>,
}

impl DesiredState {
    /// The `Provider` document named `name`.
    pub fn provider(&self, name: &str) -> Option<&Located<ProviderSpec>> {
        self.providers.iter().find(|p| p.name() == name)
    }

    /// Number of documents.
    pub fn document_count(&self) -> usize {
        self.providers.len()
            + self.accelerators.len()
            + self.health_checks.len()
            + self.backend_services.len()
            + self.url_maps.len()
            + self.meshes.len()
            + self.traffic_policies.len()
            + self.residency_policies.len()
    }
}

/// Why desired state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory could not be read.
    #[error("cannot read desired state at {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The documents are invalid.
    #[error("{} error(s) in the desired state", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// Reads every `*.yaml` / `*.yml` file under `dir`, recursively, in path
/// order. Hidden entries (like `.git`) and symbolic links are skipped.
pub fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, LoadError> {
    let mut files = Vec::new();
    collect(dir, dir, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(dir).map_err(io)?;
    if !metadata.is_dir() {
        return Err(LoadError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(io)?;
        if file_type.is_symlink() {
            tracing::warn!(path = %path.display(), "skipping symbolic link in desired state");
        } else if file_type.is_dir() {
            collect(root, &path, out)?;
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?;
            out.push(SourceFile {
                path: path.display().to_string(),
                text,
            });
        }
    }
    let _ = root;
    Ok(())
}

/// Loads and validates desired state from a directory.
pub fn load_dir(dir: &Path) -> Result<DesiredState, LoadError> {
    let files = read_dir(dir)?;
    load(&files)
}

fn typed<S: DeserializeOwned>(
    file: &Arc<str>,
    node: &Node,
    positions: &Arc<HashMap<String, Pos>>,
    errors: &mut Vec<Diagnostic>,
) -> Option<Located<S>> {
    match serde_json::from_value::<Document<S>>(node.to_json()) {
        Ok(doc) => Some(Located {
            file: file.clone(),
            pos: node.pos,
            positions: positions.clone(),
            doc,
        }),
        Err(error) => {
            // The structural check passed, so this is a value serde refuses
            // for a reason the schema cannot express (e.g. a float too large).
            errors.push(Diagnostic {
                file: file.to_string(),
                pos: node.pos,
                path: String::new(),
                message: format!("invalid document: {error}"),
            });
            None
        }
    }
}

/// Parses, checks and validates desired-state files. Reports every error.
/// A set of files without any document is an error: an emptied folder must
/// never be read as "delete everything" (see [`load_allowing_empty`]).
pub fn load(files: &[SourceFile]) -> Result<DesiredState, LoadError> {
    load_with(files, false)
}

/// Like [`load`], but an empty set of documents is accepted: the caller has
/// an explicit opt-in from the user to remove everything.
pub fn load_allowing_empty(files: &[SourceFile]) -> Result<DesiredState, LoadError> {
    load_with(files, true)
}

fn load_with(files: &[SourceFile], allow_empty: bool) -> Result<DesiredState, LoadError> {
    let mut state = DesiredState::default();
    let mut errors = Vec::new();
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.path.as_bytes());
        hasher.update([0]);
        hasher.update(file.text.as_bytes());
        hasher.update([0]);
        state.files.push(file.path.clone());
        let name: Arc<str> = Arc::from(file.path.as_str());
        let documents = match yaml::parse_documents(&file.text) {
            Ok(documents) => documents,
            Err(error) => {
                errors.push(Diagnostic {
                    file: file.path.clone(),
                    pos: error.pos,
                    path: String::new(),
                    message: format!("malformed YAML: {}", error.message),
                });
                continue;
            }
        };
        for node in documents {
            load_document(&name, &node, &mut state, &mut errors);
        }
    }
    state.digest = format!("{:x}", hasher.finalize());
    if errors.is_empty() && state.document_count() == 0 && !allow_empty {
        errors.push(Diagnostic {
            file: files.first().map(|f| f.path.clone()).unwrap_or_else(|| "(desired state)".to_owned()),
            pos: Pos { line: 1, col: 1 },
            path: String::new(),
            message: "no desired-state documents found (expected *.yaml / *.yml files with `apiVersion`, `kind`, `metadata` and `spec`); refusing to treat an empty folder as \"delete everything\"".to_owned(),
        });
    }
    if errors.is_empty() {
        errors.extend(validate::validate(&state));
    }
    if errors.is_empty() {
        Ok(state)
    } else {
        errors.sort();
        errors.dedup();
        Err(LoadError::Invalid(errors))
    }
}

fn load_document(
    file: &Arc<str>,
    node: &Node,
    state: &mut DesiredState,
    errors: &mut Vec<Diagnostic>,
) {
    let diagnostic = |pos: Pos, path: &str, message: String| Diagnostic {
        file: file.to_string(),
        pos,
        path: path.to_owned(),
        message,
    };
    if !matches!(node.value, Value::Map(_)) {
        errors.push(diagnostic(
            node.pos,
            "",
            format!(
                "a document must be a mapping with apiVersion, kind, metadata and spec; got {}",
                node.value.describe()
            ),
        ));
        return;
    }
    let kind = match node.get("kind") {
        None => {
            errors.push(diagnostic(
                node.pos,
                "kind",
                format!(
                    "missing required field `kind`; allowed kinds: {}",
                    raw::KINDS.join(", ")
                ),
            ));
            return;
        }
        Some(Node {
            value: Value::Str(kind),
            pos,
        }) => {
            if !raw::KINDS.contains(&kind.as_str()) {
                errors.push(diagnostic(
                    *pos,
                    "kind",
                    format!(
                        "unknown kind `{kind}`; allowed kinds: {}",
                        raw::KINDS.join(", ")
                    ),
                ));
                return;
            }
            kind.clone()
        }
        Some(other) => {
            errors.push(diagnostic(
                other.pos,
                "kind",
                format!(
                    "expected a string, got {}; allowed kinds: {}",
                    other.value.describe(),
                    raw::KINDS.join(", ")
                ),
            ));
            return;
        }
    };
    let Some(schema) = schema::kind_schema(&kind) else {
        return;
    };
    let issues = schema::check(node, &schema);
    if !issues.is_empty() {
        errors.extend(
            issues
                .into_iter()
                .map(|i| diagnostic(i.pos, &i.path, i.message)),
        );
        return;
    }
    let mut positions = HashMap::new();
    node.index_positions("", &mut positions);
    let positions = Arc::new(positions);
    match kind.as_str() {
        "Provider" => state
            .providers
            .extend(typed(file, node, &positions, errors)),
        "GlobalAccelerator" => state
            .accelerators
            .extend(typed(file, node, &positions, errors)),
        "HealthCheck" => state
            .health_checks
            .extend(typed(file, node, &positions, errors)),
        "BackendService" => state
            .backend_services
            .extend(typed(file, node, &positions, errors)),
        "UrlMap" => state.url_maps.extend(typed(file, node, &positions, errors)),
        "TransitGatewayMesh" => state.meshes.extend(typed(file, node, &positions, errors)),
        "TrafficPolicy" => state
            .traffic_policies
            .extend(typed(file, node, &positions, errors)),
        "DataResidencyPolicy" => state
            .residency_policies
            .extend(typed(file, node, &positions, errors)),
        _ => {}
    }
}
