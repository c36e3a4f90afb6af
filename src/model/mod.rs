//! The desired-state model: loading, structural checks and validation.
//!
//! Parse, then validate offline, then touch the network: this module turns
//! files into a [`DesiredState`] or into every [`Diagnostic`] at once, and
//! never needs credentials or a network. Nothing downstream sees YAML.

pub mod raw;
pub mod yaml;
pub use meridian_provider::regions;
pub mod schema;
pub mod validate;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use raw::{
    BackendServiceDocSpec, ClientPopulationSpec, DataResidencyPolicySpec, Document,
    GlobalAcceleratorSpec, HealthCheckDocSpec, ProviderSpec, TrafficPolicySpec,
    TransitGatewayMeshSpec, UrlMapDocSpec,
};
use yaml::{Node, Pos, Value};

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

/// The annotation that says how much of a document's objects meridian
/// writes ([`Management`]).
pub const MANAGEMENT_KEY: &str = "meridian.dev/management";

pub use meridian_provider::EXTERNAL_ID_KEY;

/// The annotation acknowledging the static IP addresses an accelerator
/// loses when a plan replaces it (on the `GlobalAccelerator` that replaces
/// it) or deletes an adopted one (on its `Provider`).
pub const ALLOW_REPLACE_KEY: &str = "meridian.dev/allow-replace";

/// The cloud identities a document's `meridian.dev/external-id` names, or
/// what is wrong with it: an accelerator's ARN; a GCP object's selfLink
/// (or name), which must end in the document's name (GCP names never
/// change); a mesh's gateways as `REGION=tgw-…`, comma-separated.
pub fn external_ids(kind: &str, name: &str, value: &str) -> Result<Vec<String>, String> {
    let ids: Vec<String> = value
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        return Err("is empty: give the live object's cloud identity".to_owned());
    }
    match kind {
        "GlobalAccelerator" => match ids.as_slice() {
            [arn]
                if arn.starts_with("arn:aws:globalaccelerator::")
                    && arn.contains(":accelerator/")
                    && !arn.contains("/listener/") =>
            {
                Ok(ids)
            }
            _ => Err(format!(
                "`{value}` is not an accelerator ARN: give one `arn:aws:globalaccelerator::ACCOUNT:accelerator/ID`"
            )),
        },
        "HealthCheck" | "BackendService" | "UrlMap" => {
            let collection = match kind {
                "HealthCheck" => "healthChecks",
                "BackendService" => "backendServices",
                _ => "urlMaps",
            };
            let [id] = ids.as_slice() else {
                return Err(format!("names {} objects: give one selfLink", ids.len()));
            };
            let last = id.rsplit('/').next().unwrap_or(id);
            let shaped = !id.contains('/') || id.contains(&format!("/global/{collection}/"));
            if !shaped {
                return Err(format!(
                    "`{id}` is not a global {collection} selfLink: give `https://compute.googleapis.com/compute/v1/projects/PROJECT/global/{collection}/NAME` or the name"
                ));
            }
            if last != name {
                return Err(format!(
                    "`{id}` names `{last}`, but this document is `{name}`: GCP names never change, so metadata.name must be the live object's name"
                ));
            }
            Ok(ids)
        }
        "TransitGatewayMesh" => {
            let mut regions = std::collections::BTreeSet::new();
            for id in &ids {
                let Some((region, gateway)) = id.split_once('=') else {
                    return Err(format!(
                        "`{id}` does not say its region: write `REGION=tgw-…` for each gateway, e.g. `us-east-1=tgw-0123456789abcdef0`"
                    ));
                };
                let hex = gateway.strip_prefix("tgw-").unwrap_or("");
                if hex.is_empty()
                    || hex.starts_with("attach-")
                    || !hex.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(format!(
                        "`{gateway}` is not a transit gateway id (`tgw-` and hex digits); peerings between pinned gateways are adopted with them"
                    ));
                }
                if !regions.insert(region.to_owned()) {
                    return Err(format!(
                        "pins two gateways in {region}: a mesh has one gateway per region"
                    ));
                }
            }
            Ok(ids)
        }
        other => Err(format!(
            "`meridian.dev/external-id` names live objects of GlobalAccelerator, HealthCheck, BackendService, UrlMap and TransitGatewayMesh documents, not of a {other}"
        )),
    }
}

/// What a `meridian.dev/allow-replace` value acknowledges: IP addresses
/// (an accelerator's), or the cloud ids of adopted objects of other kinds
/// (a GCP object's path, a gateway or peering attachment id).
pub fn acknowledged_addresses(value: &str) -> Result<std::collections::BTreeSet<String>, String> {
    let mut out = std::collections::BTreeSet::new();
    for item in value
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match item.parse::<std::net::IpAddr>() {
            Ok(ip) => {
                out.insert(ip.to_string());
            }
            Err(_) if item.contains("/global/") || item.starts_with("tgw-") => {
                out.insert(item.to_owned());
            }
            Err(_) => {
                return Err(format!(
                    "`{item}` is not an IP address (or the cloud id of an adopted object): list what the plan names as lost (comma-separated)"
                ));
            }
        }
    }
    if out.is_empty() {
        return Err("is empty: list the IP addresses the plan names as lost".to_owned());
    }
    Ok(out)
}

/// How much of a document's objects meridian writes
/// (`metadata.annotations["meridian.dev/management"]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Management {
    /// Everything the document declares (the default).
    #[default]
    Full,
    /// Nothing: differences are reported as drift and never written, and
    /// no object is created or deleted.
    Observe,
    /// Only the traffic levers (endpoint groups' dials, endpoints'
    /// weights, backends' capacity scalers); every other field stays as
    /// whoever owns it left it, and no object is created or deleted.
    Traffic,
}

impl Management {
    /// The modes, as written in the annotation.
    pub const ALLOWED: &'static str = "full (meridian writes everything the document declares; the default), observe (differences are reported as drift, nothing is written) or traffic (only traffic dials, endpoint weights and capacity scalers are written)";

    /// Reads an annotation value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "full" => Some(Self::Full),
            "observe" => Some(Self::Observe),
            "traffic" => Some(Self::Traffic),
            _ => None,
        }
    }

    /// The mode a document's metadata asks for; `full` when it names none
    /// (validation refuses a value it cannot read).
    pub fn of(metadata: &raw::Metadata) -> Self {
        metadata
            .annotations
            .get(MANAGEMENT_KEY)
            .and_then(|v| Self::parse(v))
            .unwrap_or_default()
    }

    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Observe => "observe",
            Self::Traffic => "traffic",
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
    /// `ClientPopulation` documents.
    pub client_populations: Vec<Located<ClientPopulationSpec>>,
    /// SHA-256 over every file's path and content, hex.
    pub digest: String,
    /// Files read.
    pub files: Vec<String>,
    /// Whether some documents could not be read or typed (their errors are
    /// reported). Cross-document references are not checked then: a
    /// reference to a broken document is not a second error.
    pub partial: bool,
    /// Documents by name, built on first lookup ([`Self::accelerator`],
    /// [`Self::backend_service`]): constant-time lookups for the planning
    /// core, which asks once per object.
    pub(crate) by_name: std::sync::OnceLock<NameIndex>,
}

/// Positions of documents by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameIndex {
    accelerators: std::collections::HashMap<String, usize>,
    backend_services: std::collections::HashMap<String, usize>,
}

/// The document named `name` in `docs`, through `index` when it still
/// points at it (the lists are public and may have changed since the index
/// was built), else by a scan.
fn named<'a, T>(
    docs: &'a [Located<T>],
    index: &std::collections::HashMap<String, usize>,
    name: &str,
) -> Option<&'a Located<T>> {
    match index.get(name).and_then(|&i| docs.get(i)) {
        Some(doc) if doc.name() == name => Some(doc),
        _ => docs.iter().find(|d| d.name() == name),
    }
}

impl DesiredState {
    fn index(&self) -> &NameIndex {
        self.by_name.get_or_init(|| {
            let positions = |names: Vec<&str>| {
                let mut out = std::collections::HashMap::with_capacity(names.len());
                for (i, name) in names.into_iter().enumerate() {
                    // The first of duplicate names, as a scan would find.
                    out.entry(name.to_owned()).or_insert(i);
                }
                out
            };
            NameIndex {
                accelerators: positions(self.accelerators.iter().map(|d| d.name()).collect()),
                backend_services: positions(
                    self.backend_services.iter().map(|d| d.name()).collect(),
                ),
            }
        })
    }

    /// The `GlobalAccelerator` document named `name`.
    pub fn accelerator(&self, name: &str) -> Option<&Located<GlobalAcceleratorSpec>> {
        named(&self.accelerators, &self.index().accelerators, name)
    }

    /// The `BackendService` document named `name`.
    pub fn backend_service(&self, name: &str) -> Option<&Located<BackendServiceDocSpec>> {
        named(&self.backend_services, &self.index().backend_services, name)
    }

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
            + self.client_populations.len()
    }
}

/// Why desired state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory could not be read.
    #[error("cannot read desired state at {path}: {cause}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause (part of the message, not a chained source).
        cause: std::io::Error,
    },
    /// The documents are invalid.
    #[error("{} error(s) in the desired state", .0.len())]
    Invalid(Vec<Diagnostic>),
}

/// Reads every `*.yaml` / `*.yml` file (any case) under `dir`, recursively,
/// in path order. Hidden entries (like `.git`) are skipped. A symbolic link to
/// a file inside the folder is read (one file shared by two names); a link
/// whose target lies outside the folder is refused, so desired state never
/// reads what the folder's owner did not put in it; a link to a folder is
/// skipped with a warning, so a link can never make the walk loop; a broken
/// link is an error, never a silent deletion. A file larger than
/// [`yaml::MAX_FILE_BYTES`] is refused from its length, before it is read,
/// and so is the file that would take the folder past [`yaml::MAX_FILES`]
/// or [`yaml::MAX_TOTAL_BYTES`] (the walk stops there).
/// Refused files are reported together, as diagnostics ([`LoadError::Invalid`]).
pub fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, LoadError> {
    let root = std::fs::canonicalize(dir).map_err(|cause| LoadError::Io {
        path: dir.to_path_buf(),
        cause,
    })?;
    let mut files = Vec::new();
    let mut refused = Vec::new();
    let mut totals = yaml::Totals::default();
    collect(&root, dir, &mut files, &mut refused, &mut totals)?;
    if !refused.is_empty() {
        refused.sort();
        return Err(LoadError::Invalid(refused));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// A file refused as a whole, before its content is read.
fn refusal(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: path.display().to_string(),
        pos: Pos { line: 1, col: 1 },
        path: String::new(),
        message,
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<SourceFile>,
    refused: &mut Vec<Diagnostic>,
    totals: &mut yaml::Totals,
) -> Result<(), LoadError> {
    let io = |cause| LoadError::Io {
        path: dir.to_path_buf(),
        cause,
    };
    let metadata = std::fs::metadata(dir).map_err(io)?;
    if !metadata.is_dir() {
        return Err(LoadError::Io {
            path: dir.to_path_buf(),
            cause: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    // In the order Git lists a tree (names as bytes, a folder's as if it
    // ended in `/`): the file that crosses a limit is the same on every
    // run, in every checkout, and in the revision it was committed in.
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_cached_key(|entry| {
        let mut key = entry.file_name().into_encoded_bytes();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            key.push(b'/');
        }
        key
    });
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
        let mut file_type = entry.file_type().map_err(io)?;
        if file_type.is_symlink() {
            let target = std::fs::metadata(&path).map_err(|cause| LoadError::Io {
                path: path.clone(),
                cause,
            })?;
            if target.is_dir() {
                tracing::warn!(path = %path.display(), "skipping a symbolic link to a folder in desired state");
                continue;
            }
            if yaml {
                // Both sides canonical: `..`, nested links and a folder that
                // is itself reached through a link all resolve first.
                let resolved = std::fs::canonicalize(&path).map_err(|cause| LoadError::Io {
                    path: path.clone(),
                    cause,
                })?;
                if !resolved.starts_with(root) {
                    refused.push(refusal(
                        &path,
                        format!(
                            "symbolic link to {}, outside the desired-state folder {}: links must stay inside the folder (copy the file in, or move the folder up to hold both)",
                            resolved.display(),
                            root.display()
                        ),
                    ));
                    continue;
                }
            }
            file_type = target.file_type();
        }
        if file_type.is_dir() {
            collect(root, &path, out, refused, totals)?;
        } else if yaml {
            if !file_type.is_file() {
                refused.push(refusal(
                    &path,
                    "not a regular file (a pipe, socket or device): desired state must be regular files".to_owned(),
                ));
                continue;
            }
            if let Some(text) = read_limited(&path, refused, totals)? {
                out.push(SourceFile {
                    path: path.display().to_string(),
                    text,
                });
            }
        }
    }
    Ok(())
}

/// Reads a desired-state file unless it is larger than
/// [`yaml::MAX_FILE_BYTES`]: its length is checked on the open file, before
/// any content is read, and the read itself stops past the limit (a file
/// that grows meanwhile is refused too). A file that would take the folder
/// past [`yaml::MAX_FILES`] or [`yaml::MAX_TOTAL_BYTES`] ends the walk with
/// its refusal: nothing more is read.
fn read_limited(
    path: &Path,
    refused: &mut Vec<Diagnostic>,
    totals: &mut yaml::Totals,
) -> Result<Option<String>, LoadError> {
    use std::io::Read as _;
    let io = |cause| LoadError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let length = file.metadata().map_err(io)?.len();
    if length > yaml::MAX_FILE_BYTES {
        refused.push(refusal(path, yaml::too_large(length)));
        return Ok(None);
    }
    if let Err(message) = totals.add(length) {
        refused.push(refusal(path, message));
        refused.sort();
        return Err(LoadError::Invalid(std::mem::take(refused)));
    }
    let mut text = String::new();
    file.take(yaml::MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > yaml::MAX_FILE_BYTES {
        refused.push(refusal(path, yaml::too_large(text.len() as u64)));
        return Ok(None);
    }
    // A file that grew since its length was taken counts as read.
    if let Some(grown) = (text.len() as u64).checked_sub(length).filter(|g| *g > 0)
        && let Err(message) = totals.grew(grown)
    {
        refused.push(refusal(path, message));
        refused.sort();
        return Err(LoadError::Invalid(std::mem::take(refused)));
    }
    Ok(Some(text))
}

/// The files of a desired-state folder with paths relative to it, as a
/// saved plan keeps them.
pub fn read_dir_relative(dir: &Path) -> Result<Vec<SourceFile>, LoadError> {
    Ok(read_dir(dir)?
        .into_iter()
        .map(|f| SourceFile {
            path: Path::new(&f.path)
                .strip_prefix(dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| f.path.clone()),
            text: f.text,
        })
        .collect())
}

/// Loads and validates desired state from a directory. The digest covers
/// paths relative to `dir`, so `plan ds` and `apply ./ds` agree.
pub fn load_dir(dir: &Path) -> Result<DesiredState, LoadError> {
    load_files_of(dir, read_dir(dir)?)
}

/// Loads `files` (paths under `dir`, as [`read_dir`] gives them, e.g. read
/// from a commit instead of the disk) with the digest [`load_dir`] gives.
pub fn load_files_of(dir: &Path, files: Vec<SourceFile>) -> Result<DesiredState, LoadError> {
    let mut state = load(&files)?;
    let relative: Vec<SourceFile> = files
        .iter()
        .map(|f| SourceFile {
            path: Path::new(&f.path)
                .strip_prefix(dir)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| f.path.clone()),
            text: f.text.clone(),
        })
        .collect();
    state.digest = digest(&relative);
    Ok(state)
}

/// SHA-256 over every file's path and content, hex.
pub fn digest(files: &[SourceFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.path.as_bytes());
        hasher.update([0]);
        hasher.update(file.text.as_bytes());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

/// Deserialises a structurally checked document. When its values were
/// already reported out of range (`quiet`), a value serde cannot hold (300 in
/// a weight) needs no second message: the document is just left out.
fn typed<S: DeserializeOwned>(
    file: &Arc<str>,
    node: &Node,
    positions: &Arc<HashMap<String, Pos>>,
    errors: &mut Vec<Diagnostic>,
    quiet: bool,
    partial: &mut bool,
) -> Option<Located<S>> {
    match serde_json::from_value::<Document<S>>(node.to_json()) {
        Ok(doc) => Some(Located {
            file: file.clone(),
            pos: node.pos,
            positions: positions.clone(),
            doc,
        }),
        Err(_) if quiet => {
            *partial = true;
            None
        }
        Err(error) => {
            // The structural check passed, so this is a value serde refuses
            // for a reason the schema cannot express (e.g. a float too large).
            *partial = true;
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
    for file in files {
        state.files.push(file.path.clone());
        let name: Arc<str> = Arc::from(file.path.as_str());
        // Files from Git or a saved plan were not measured when read: the
        // parser refuses an oversized text before its first event.
        let documents = match yaml::parse_documents(&file.text) {
            Ok(documents) => documents,
            Err(error) => {
                errors.push(Diagnostic {
                    file: file.path.clone(),
                    pos: error.pos,
                    path: String::new(),
                    message: if error.limit {
                        error.message
                    } else {
                        format!("malformed YAML: {}", error.message)
                    },
                });
                state.partial = true;
                continue;
            }
        };
        for node in documents {
            load_document(&name, &node, &mut state, &mut errors);
        }
    }
    state.digest = digest(files);
    if errors.is_empty() && state.document_count() == 0 && !allow_empty {
        errors.push(Diagnostic {
            file: files.first().map(|f| f.path.clone()).unwrap_or_else(|| "(desired state)".to_owned()),
            pos: Pos { line: 1, col: 1 },
            path: String::new(),
            message: "no desired-state documents found (expected *.yaml / *.yml files with `apiVersion`, `kind`, `metadata` and `spec`); refusing to treat an empty folder as \"delete everything\"".to_owned(),
        });
    }
    // Every document that could be typed is validated, even when others
    // failed: all errors are reported at once.
    errors.extend(validate::validate(&state));
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
        state.partial = true;
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
            state.partial = true;
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
                state.partial = true;
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
            state.partial = true;
            return;
        }
    };
    let Some(schema) = schema::kind_schema(&kind) else {
        return;
    };
    let issues = schema::check(node, &schema);
    let quiet = !issues.is_empty();
    let blocking = issues.iter().any(|i| i.blocking);
    errors.extend(
        issues
            .into_iter()
            .map(|i| diagnostic(i.pos, &i.path, i.message)),
    );
    if blocking {
        state.partial = true;
        return;
    }
    let mut positions = HashMap::new();
    node.index_positions("", &mut positions);
    let positions = Arc::new(positions);
    match kind.as_str() {
        "Provider" => state.providers.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "GlobalAccelerator" => state.accelerators.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "HealthCheck" => state.health_checks.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "BackendService" => state.backend_services.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "UrlMap" => state.url_maps.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "TransitGatewayMesh" => state.meshes.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "TrafficPolicy" => state.traffic_policies.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "ClientPopulation" => state.client_populations.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        "DataResidencyPolicy" => state.residency_policies.extend(typed(
            file,
            node,
            &positions,
            errors,
            quiet,
            &mut state.partial,
        )),
        _ => {}
    }
}
