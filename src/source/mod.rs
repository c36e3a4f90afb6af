//! Git as an immutable artifact.
//!
//! The only module that knows Git. It fetches a branch into a bare mirror
//! (for remote URLs) or reads a local repository in place, and reads the
//! desired-state folder at a commit straight from the object database: no
//! checkout, no working-tree writes, safe next to a user's own clone.
//! Everything downstream sees a [`Snapshot`]: a revision and files.

pub mod signature;

use std::cell::Cell;
use std::path::{Path, PathBuf};

use git2::{Cred, CredentialType, FetchOptions, ObjectType, Oid, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};

use crate::model::SourceFile;

/// Errors reading desired state from Git.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A Git operation failed.
    #[error("git: {context}: {message}")]
    Git {
        /// What meridian was doing.
        context: String,
        /// libgit2's message (never contains credentials).
        message: String,
    },
    /// The watched branch does not exist (any more).
    #[error(
        "branch `{branch}` does not exist in {repo}; was it deleted or renamed? The last applied state stays live"
    )]
    BranchGone {
        /// Branch name.
        branch: String,
        /// Repository.
        repo: String,
    },
    /// The desired-state folder is missing at a revision.
    #[error("`{path}` does not exist at revision {revision} (or is not a folder)")]
    PathMissing {
        /// The folder.
        path: String,
        /// The revision.
        revision: String,
    },
    /// The desired-state folder holds no YAML.
    #[error(
        "`{path}` holds no *.yaml or *.yml files at revision {revision}; refusing to treat that as \"delete everything\" (pass --allow-empty to allow it)"
    )]
    Empty {
        /// The folder.
        path: String,
        /// The revision.
        revision: String,
    },
    /// A file is not UTF-8.
    #[error("{path} at revision {revision} is not UTF-8 text")]
    NotText {
        /// The file.
        path: String,
        /// The revision.
        revision: String,
    },
    /// A desired-state file is larger than [`MAX_FILE_BYTES`]; refused from
    /// its object header, before its content is read.
    #[error("{path} at revision {revision}: {}", crate::model::yaml::too_large(*.bytes))]
    TooLarge {
        /// The file.
        path: String,
        /// The revision.
        revision: String,
        /// Its size.
        bytes: u64,
    },
    /// The folder at a revision holds more YAML than a desired state may
    /// ([`crate::model::yaml::MAX_FILES`] files,
    /// [`crate::model::yaml::MAX_TOTAL_BYTES`] together); `path` is the
    /// file that crossed the limit, refused before it was read.
    #[error("{path} at revision {revision}: {message}")]
    TooMuch {
        /// The file that crossed the limit.
        path: String,
        /// The revision.
        revision: String,
        /// Which limit, and by how much.
        message: String,
    },
    /// Under `--verify-signatures=all`, the head is an ancestor of the
    /// last applied revision: applying it would move the fleet back to an
    /// older (signed) state without a new signed commit saying so.
    #[error(
        "revision {head} is behind the last applied revision {applied}: with --verify-signatures=all meridian does not move back to an older commit; revert with a new signed commit"
    )]
    Behind {
        /// The head.
        head: String,
        /// The last applied revision.
        applied: String,
    },
    /// The desired-state folder asked for has a `..` component.
    #[error(
        "the desired-state folder `{path}` holds a `..` component, which could leave the repository; give a folder inside the repository, relative to its root, without `..`"
    )]
    OutsideRepository {
        /// The folder, as given.
        path: String,
    },
    /// A tree entry has a name Git never writes (`.`, `..`, empty, or
    /// holding `/`): the revision is refused rather than read.
    #[error(
        "{path} at revision {revision}: a tree entry named `{name}`, which Git never writes; refusing to read the revision"
    )]
    UnsafeEntry {
        /// The folder holding the entry.
        path: String,
        /// The entry's name.
        name: String,
        /// The revision.
        revision: String,
    },
    /// A symbolic link in the folder points out of the repository.
    #[error(
        "{path} at revision {revision}: a symbolic link to `{target}`, outside the repository; links are never followed, and one leaving the repository is refused: commit the file itself"
    )]
    LinkOutside {
        /// The link.
        path: String,
        /// Where it points.
        target: String,
        /// The revision.
        revision: String,
    },
}

impl SourceError {
    /// Whether the error is the revision's own (its content or shape is
    /// not desired state meridian will read), not a failure to reach it:
    /// such a revision is invalid until a new commit, never retried.
    pub fn invalid_revision(&self) -> bool {
        matches!(
            self,
            SourceError::Empty { .. }
                | SourceError::PathMissing { .. }
                | SourceError::NotText { .. }
                | SourceError::TooLarge { .. }
                | SourceError::TooMuch { .. }
                | SourceError::UnsafeEntry { .. }
                | SourceError::LinkOutside { .. }
        )
    }
}

pub use crate::model::yaml::MAX_FILE_BYTES;
use crate::model::yaml::Totals;

/// Whether a symbolic link in the folder `dir` (repository-relative)
/// pointing at `target` leads out of the repository: an absolute target,
/// or more `..` than there are folders above it.
fn leaves_repository(dir: &str, target: &str) -> bool {
    if target.starts_with('/') || target.starts_with('\\') {
        return true;
    }
    let mut depth = dir
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .count();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if depth == 0 {
                    return true;
                }
                depth -= 1;
            }
            _ => depth += 1,
        }
    }
    false
}

/// The desired-state folder `path` (`--path`) as a path inside the
/// repository, leading and trailing `/` removed; an error when a `..`
/// component would take it out of the repository. Checked before anything
/// is read.
pub fn folder_in_repository(path: &str) -> Result<&str, SourceError> {
    let folder = path.trim_matches('/');
    if folder.split('/').any(|component| component == "..") {
        return Err(SourceError::OutsideRepository {
            path: path.to_owned(),
        });
    }
    Ok(folder)
}

fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> SourceError {
    let context = context.into();
    move |error| SourceError::Git {
        context,
        message: error.message().to_owned(),
    }
}

/// How to authenticate to a remote. Secrets are read from the environment
/// at use and never stored in logs, errors or status.
#[derive(Debug, Clone, Default)]
pub struct GitAuth {
    /// Environment variable holding an HTTPS token.
    pub token_env: Option<String>,
    /// SSH private key file (otherwise the SSH agent is used).
    pub ssh_key: Option<PathBuf>,
}

/// The desired-state folder at one revision.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Full commit id.
    pub revision: String,
    /// The folder, relative to the repository root.
    pub path: String,
    /// YAML files, with repository-relative paths.
    pub files: Vec<SourceFile>,
    /// Things ignored on the way (symlinks, non-YAML files, submodules).
    pub notes: Vec<String>,
    /// SHA-256 over the files' paths and contents.
    pub digest: String,
}

/// A Git repository meridian reads desired state from.
pub struct RepoSource {
    repo: Repository,
    /// The URL for remote repositories; `None` for a local path read in place.
    url: Option<String>,
    display: String,
    auth: GitAuth,
}

/// Whether `spec` names a remote rather than a local path.
pub fn is_remote(spec: &str) -> bool {
    spec.contains("://") || (spec.contains('@') && spec.contains(':') && !Path::new(spec).exists())
}

impl RepoSource {
    /// Opens a repository: a local path is read in place; a URL is mirrored
    /// into a bare repository under `cache_dir`.
    pub fn open(spec: &str, cache_dir: &Path, auth: GitAuth) -> Result<Self, SourceError> {
        if is_remote(spec) {
            let key = format!("{:x}", Sha256::digest(spec.as_bytes()));
            let mirror = cache_dir.join("repos").join(format!("{}.git", &key[..16]));
            let repo = if mirror.exists() {
                Repository::open_bare(&mirror)
                    .map_err(git(format!("opening the mirror of {}", redact(spec))))?
            } else {
                std::fs::create_dir_all(&mirror).map_err(|e| SourceError::Git {
                    context: format!("creating {}", mirror.display()),
                    message: e.to_string(),
                })?;
                Repository::init_bare(&mirror)
                    .map_err(git(format!("creating the mirror of {}", redact(spec))))?
            };
            Ok(Self {
                repo,
                url: Some(spec.to_owned()),
                display: redact(spec),
                auth,
            })
        } else {
            let repo = Repository::open(spec).map_err(git(format!("opening {spec}")))?;
            Ok(Self {
                repo,
                url: None,
                display: spec.to_owned(),
                auth,
            })
        }
    }

    /// The repository as shown to humans (URLs without credentials).
    pub fn display(&self) -> &str {
        &self.display
    }

    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let attempts = Cell::new(0u32);
        let auth = self.auth.clone();
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(move |_url, username, allowed| {
            attempts.set(attempts.get() + 1);
            if attempts.get() > 3 {
                return Err(git2::Error::from_str(
                    "authentication failed (credentials were rejected)",
                ));
            }
            if allowed.contains(CredentialType::SSH_KEY) {
                let user = username.unwrap_or("git");
                return match &auth.ssh_key {
                    Some(key) => Cred::ssh_key(user, None, key, None),
                    None => Cred::ssh_key_from_agent(user),
                };
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                if let Some(token) = auth
                    .token_env
                    .as_deref()
                    .and_then(|name| std::env::var(name).ok())
                {
                    return Cred::userpass_plaintext(username.unwrap_or("x-access-token"), &token);
                }
                return Err(git2::Error::from_str(
                    "the remote asks for credentials but no token is configured (--git-token-env)",
                ));
            }
            Cred::default()
        });
        callbacks
    }

    /// Fetches every branch (force, with pruning, so rewritten history and
    /// deleted branches are followed) and returns the head of `branch`.
    pub fn fetch(&self, branch: &str) -> Result<Oid, SourceError> {
        self.fetch_all()?;
        self.head_of(branch)
    }

    /// The commit `branch` points at (after the last fetch, for remotes).
    pub fn head_of(&self, branch: &str) -> Result<Oid, SourceError> {
        let reference = if self.url.is_some() {
            format!("refs/remotes/origin/{branch}")
        } else {
            format!("refs/heads/{branch}")
        };
        self.repo
            .refname_to_id(&reference)
            .map_err(|_| SourceError::BranchGone {
                branch: branch.to_owned(),
                repo: self.display.clone(),
            })
    }

    /// Fetches every branch of a remote; a no-op for a local repository,
    /// which is read in place.
    pub fn fetch_all(&self) -> Result<(), SourceError> {
        if let Some(url) = &self.url {
            let mut remote = self
                .repo
                .remote_anonymous(url)
                .map_err(git(format!("connecting to {}", self.display)))?;
            let mut options = FetchOptions::new();
            options.remote_callbacks(self.callbacks());
            options.prune(git2::FetchPrune::On);
            options.download_tags(git2::AutotagOption::None);
            let refspec = "+refs/heads/*:refs/remotes/origin/*";
            remote
                .fetch(&[refspec], Some(&mut options), None)
                .map_err(git(format!("fetching from {}", self.display)))?;
            // An anonymous remote does not prune tracking refs: drop those the remote no longer has.
            let heads: Vec<String> = remote
                .list()
                .map(|l| l.iter().map(|h| h.name().to_owned()).collect())
                .unwrap_or_default();
            if let Ok(references) = self.repo.references_glob("refs/remotes/origin/*") {
                let stale: Vec<String> = references
                    .filter_map(Result::ok)
                    .filter_map(|r| r.name().ok().map(str::to_owned))
                    .filter(|name| {
                        !heads.contains(&name.replacen("refs/remotes/origin/", "refs/heads/", 1))
                    })
                    .collect();
                for name in stale {
                    if let Ok(mut reference) = self.repo.find_reference(&name) {
                        let _ = reference.delete();
                    }
                }
            }
        }
        Ok(())
    }

    /// Resolves a revision (commit id, branch, tag, `HEAD~1`…) to a commit.
    pub fn resolve(&self, revision: &str) -> Result<Oid, SourceError> {
        let candidates = [
            revision.to_owned(),
            format!("origin/{revision}"),
            format!("refs/remotes/origin/{revision}"),
        ];
        for candidate in &candidates {
            if let Ok(object) = self.repo.revparse_single(candidate)
                && let Ok(commit) = object.peel_to_commit()
            {
                return Ok(commit.id());
            }
        }
        Err(SourceError::Git {
            context: format!("resolving `{revision}` in {}", self.display),
            message: "no such revision".to_owned(),
        })
    }

    /// Reads the desired-state folder at `commit` from the object database.
    pub fn snapshot(
        &self,
        commit: Oid,
        path: &str,
        allow_empty: bool,
    ) -> Result<Snapshot, SourceError> {
        let folder = folder_in_repository(path)?;
        let revision = commit.to_string();
        let commit = self
            .repo
            .find_commit(commit)
            .map_err(git(format!("reading commit {revision}")))?;
        let root = commit
            .tree()
            .map_err(git(format!("reading the tree of {revision}")))?;
        let tree = if folder.is_empty() || folder == "." {
            root
        } else {
            let entry = root
                .get_path(Path::new(folder))
                .map_err(|_| SourceError::PathMissing {
                    path: folder.to_owned(),
                    revision: revision.clone(),
                })?;
            if entry.kind() != Some(ObjectType::Tree) {
                return Err(SourceError::PathMissing {
                    path: folder.to_owned(),
                    revision,
                });
            }
            self.repo
                .find_tree(entry.id())
                .map_err(git(format!("reading {folder} at {revision}")))?
        };
        let mut walk = Walk {
            revision: &revision,
            files: Vec::new(),
            notes: Vec::new(),
            unnoted: 0,
            totals: Totals::default(),
        };
        self.walk(&tree, folder, &mut walk)?;
        let Walk {
            mut files,
            mut notes,
            unnoted,
            ..
        } = walk;
        if unnoted > 0 {
            notes.push(format!("… and {unnoted} more entries ignored"));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if files.is_empty() && !allow_empty {
            return Err(SourceError::Empty {
                path: folder.to_owned(),
                revision,
            });
        }
        let mut hasher = Sha256::new();
        for file in &files {
            hasher.update(file.path.as_bytes());
            hasher.update([0]);
            hasher.update(file.text.as_bytes());
            hasher.update([0]);
        }
        Ok(Snapshot {
            digest: format!("{:x}", hasher.finalize()),
            revision,
            path: folder.to_owned(),
            files,
            notes,
        })
    }

    fn walk(
        &self,
        tree: &git2::Tree<'_>,
        prefix: &str,
        at: &mut Walk<'_>,
    ) -> Result<(), SourceError> {
        let revision = at.revision;
        for entry in tree.iter() {
            let name = entry.name().unwrap_or("(non-UTF-8 name)");
            // Git's own checks refuse such trees; a crafted object database
            // could still hold one, and a path built from it must not leave
            // the folder.
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(SourceError::UnsafeEntry {
                    path: if prefix.is_empty() {
                        ".".to_owned()
                    } else {
                        prefix.to_owned()
                    },
                    name: name.to_owned(),
                    revision: revision.to_owned(),
                });
            }
            // As on disk (`model::read_dir`): hidden entries (`.github/`,
            // `.gitignore`) are not desired state, and the extension is
            // matched in any case.
            if name.starts_with('.') {
                continue;
            }
            let lower = name.to_ascii_lowercase();
            let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
            let path = if prefix.is_empty() || prefix == "." {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            match entry.filemode() {
                0o040000 => {
                    let subtree = self
                        .repo
                        .find_tree(entry.id())
                        .map_err(git(format!("reading {path}")))?;
                    self.walk(&subtree, &path, at)?;
                }
                0o120000 => {
                    // Links are never followed; one that points out of the
                    // repository is refused outright, as it is on disk.
                    let target = self
                        .repo
                        .find_blob(entry.id())
                        .map(|blob| {
                            let content = blob.content();
                            String::from_utf8_lossy(&content[..content.len().min(4096)])
                                .into_owned()
                        })
                        .map_err(git(format!("reading the link {path}")))?;
                    if leaves_repository(prefix, &target) {
                        return Err(SourceError::LinkOutside {
                            path,
                            target,
                            revision: revision.to_owned(),
                        });
                    }
                    at.note(|| {
                        format!(
                            "{path}: symbolic link ignored (desired state must be regular files)"
                        )
                    });
                }
                0o160000 => at.note(|| format!("{path}: submodule ignored")),
                _ if yaml => {
                    // The size from the object's header, before the blob is
                    // inflated into memory.
                    let bytes = match self.repo.odb().and_then(|odb| odb.read_header(entry.id())) {
                        Ok((bytes, _)) => bytes as u64,
                        Err(_) => self
                            .repo
                            .find_blob(entry.id())
                            .map_err(git(format!("reading {path}")))?
                            .size() as u64,
                    };
                    if bytes > MAX_FILE_BYTES {
                        return Err(SourceError::TooLarge {
                            path,
                            revision: revision.to_owned(),
                            bytes,
                        });
                    }
                    if let Err(message) = at.totals.add(bytes) {
                        return Err(SourceError::TooMuch {
                            path,
                            revision: revision.to_owned(),
                            message,
                        });
                    }
                    let blob = self
                        .repo
                        .find_blob(entry.id())
                        .map_err(git(format!("reading {path}")))?;
                    let text =
                        std::str::from_utf8(blob.content()).map_err(|_| SourceError::NotText {
                            path: path.clone(),
                            revision: revision.to_owned(),
                        })?;
                    at.files.push(SourceFile {
                        path,
                        text: text.to_owned(),
                    });
                }
                _ => at.note(|| format!("{path}: not a *.yaml/*.yml file, ignored")),
            }
        }
        Ok(())
    }
}

/// Most entries a snapshot names as ignored; the rest are counted. A
/// repository's README and CI files want a line each in the log, a folder
/// of a hundred thousand images does not.
const MAX_NOTES: usize = 100;

/// What reading one revision's folder has gathered so far.
struct Walk<'a> {
    revision: &'a str,
    files: Vec<SourceFile>,
    notes: Vec<String>,
    unnoted: usize,
    totals: Totals,
}

impl Walk<'_> {
    fn note(&mut self, text: impl FnOnce() -> String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(text());
        } else {
            self.unnoted += 1;
        }
    }
}

/// Which commits must carry a trusted signature (`--verify-signatures`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// The revision applied (the branch head).
    Head,
    /// Every commit since the last applied revision (or the head alone
    /// when nothing was applied yet).
    All,
}

/// The keys commits must be signed with, and which commits.
#[derive(Clone)]
pub struct SignaturePolicy {
    /// Trusted keys (SSH allowed signers, OpenPGP certificates).
    pub trust: std::sync::Arc<signature::Trust>,
    /// Which commits are checked.
    pub mode: VerifyMode,
}

impl std::fmt::Debug for SignaturePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignaturePolicy")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The most commits `--verify-signatures=all` checks in one go; a longer
/// history since the last applied revision is refused, not half-checked.
pub const MAX_VERIFIED_COMMITS: usize = 10_000;

/// The outcome of checking a revision's signatures.
#[derive(Debug)]
pub struct Checked {
    /// The commit the verdict is about: the head when it is trusted, the
    /// first refused commit otherwise.
    pub commit: String,
    /// Trusted (with its signer) or refused (with the reason).
    pub verdict: signature::Verdict,
}

impl RepoSource {
    /// Checks `head` (and, in [`VerifyMode::All`], every commit after
    /// `since`) against `policy`, at the time `now` (Unix seconds).
    pub fn check_signatures(
        &self,
        head: Oid,
        since: Option<Oid>,
        policy: &SignaturePolicy,
        now: i64,
    ) -> Result<Checked, SourceError> {
        let mut commits = vec![head];
        if policy.mode == VerifyMode::All
            && let Some(since) = since
            && since != head
        {
            if self.repo.graph_descendant_of(since, head).unwrap_or(false) {
                return Err(SourceError::Behind {
                    head: head.to_string(),
                    applied: since.to_string(),
                });
            }
            let mut walk = self
                .repo
                .revwalk()
                .map_err(git("listing the commits to verify"))?;
            walk.push(head)
                .map_err(git("listing the commits to verify"))?;
            // Commits reachable from the last applied revision were
            // verified when it was applied (or are its history).
            if self.repo.find_commit(since).is_ok() {
                walk.hide(since)
                    .map_err(git("listing the commits to verify"))?;
            }
            commits.clear();
            for oid in walk {
                let oid = oid.map_err(git("listing the commits to verify"))?;
                commits.push(oid);
                if commits.len() > MAX_VERIFIED_COMMITS {
                    return Err(SourceError::Git {
                        context: format!("verifying the commits after {since}"),
                        message: format!(
                            "more than {MAX_VERIFIED_COMMITS} commits since the last applied revision; verify them by hand, or check the head alone (--verify-signatures=head)"
                        ),
                    });
                }
            }
        }
        let mut last = None;
        for commit in commits {
            let verdict = signature::verify_commit(&policy.trust, &self.repo, commit, now);
            if matches!(verdict, signature::Verdict::Refused(_)) {
                return Ok(Checked {
                    commit: commit.to_string(),
                    verdict,
                });
            }
            if commit == head || last.is_none() {
                last = Some(Checked {
                    commit: commit.to_string(),
                    verdict,
                });
            }
        }
        match last {
            Some(checked) => Ok(checked),
            None => Ok(Checked {
                commit: head.to_string(),
                verdict: signature::verify_commit(&policy.trust, &self.repo, head, now),
            }),
        }
    }

    /// The author of `commit`, `Name <email>`.
    pub fn author(&self, commit: Oid) -> Option<String> {
        let commit = self.repo.find_commit(commit).ok()?;
        let author = commit.author();
        Some(format!(
            "{} <{}>",
            author.name().unwrap_or("?"),
            author.email().unwrap_or("?")
        ))
    }
}

/// A desired-state folder in a Git work tree, checked against a signature
/// policy: what `meridian apply --verify-signatures` applies.
#[derive(Debug)]
pub struct CheckedFolder {
    /// The work tree's HEAD commit.
    pub revision: String,
    /// Its author, `Name <email>`.
    pub author: Option<String>,
    /// The signature verdict on it.
    pub checked: Checked,
    /// The folder's YAML files as committed at HEAD (paths under the
    /// folder as given): what is applied, read from the commit, not the disk.
    pub files: Vec<SourceFile>,
}

/// Checks that `dir` is committed in its Git work tree (no modified,
/// staged, deleted or untracked file under it) and that the work tree's
/// HEAD is signed as `policy` asks: only then is what the folder holds
/// what a trusted key signed. `Err` says why not.
pub fn check_folder(
    dir: &Path,
    policy: &SignaturePolicy,
    now: i64,
) -> Result<CheckedFolder, String> {
    let repo = Repository::discover(dir).map_err(|e| {
        format!(
            "{} is not in a Git work tree ({}); signatures can only be verified on committed desired state",
            dir.display(),
            e.message()
        )
    })?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| format!("{} is in a bare repository", dir.display()))?
        .canonicalize()
        .map_err(|e| format!("resolving the work tree: {e}"))?;
    let folder = dir
        .canonicalize()
        .map_err(|e| format!("resolving {}: {e}", dir.display()))?;
    let relative = folder
        .strip_prefix(&workdir)
        .map_err(|_| format!("{} is outside its work tree", dir.display()))?
        .to_string_lossy()
        .into_owned();
    let mut options = git2::StatusOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    if !relative.is_empty() {
        options.pathspec(&relative);
    }
    let changed: Vec<String> = repo
        .statuses(Some(&mut options))
        .map_err(|e| format!("reading the work tree's status: {}", e.message()))?
        .iter()
        .filter(|s| s.status() != git2::Status::CURRENT)
        .filter_map(|s| s.path().ok().map(str::to_owned))
        .collect();
    if !changed.is_empty() {
        return Err(format!(
            "{} has changes that are not committed ({}); only a signed commit is applied: commit and sign them, or apply the committed state",
            dir.display(),
            changed
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let head = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id())
        .ok_or_else(|| "the work tree has no HEAD commit".to_owned())?;
    let source = RepoSource {
        display: workdir.display().to_string(),
        repo,
        url: None,
        auth: GitAuth::default(),
    };
    let policy = SignaturePolicy {
        mode: VerifyMode::Head,
        ..policy.clone()
    };
    let checked = source
        .check_signatures(head, None, &policy, now)
        .map_err(|e| e.to_string())?;
    let snapshot = source
        .snapshot(head, &relative, false)
        .map_err(|e| e.to_string())?;
    let prefix = if relative.is_empty() {
        String::new()
    } else {
        format!("{relative}/")
    };
    let files = snapshot
        .files
        .into_iter()
        .map(|f| SourceFile {
            path: dir
                .join(f.path.strip_prefix(&prefix).unwrap_or(&f.path))
                .display()
                .to_string(),
            text: f.text,
        })
        .collect();
    Ok(CheckedFolder {
        revision: head.to_string(),
        author: source.author(head),
        checked,
        files,
    })
}

/// A URL with any `user:password@` part removed, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some(scheme) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme + 3..];
    // The authority ends at the first `/`; a password may hold `@`, so the
    // user part ends at the authority's last `@`.
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}://***@{}", &url[..scheme], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_leaving_the_repository_are_told_apart() {
        assert!(leaves_repository("desired-state", "/etc/passwd"));
        assert!(leaves_repository("desired-state", "../../secrets.yaml"));
        assert!(leaves_repository("", "../x.yaml"));
        assert!(leaves_repository("a/b", "../../../x"));
        assert!(!leaves_repository("desired-state", "../shared/x.yaml"));
        assert!(!leaves_repository(
            "desired-state",
            "global-accelerator.yaml"
        ));
        assert!(!leaves_repository("a/b", "./../../x"));
    }

    #[test]
    fn a_password_holding_at_signs_is_hidden_whole() {
        assert_eq!(
            redact("https://user:p@ss@word@git.example.com/org/repo.git"),
            "https://***@git.example.com/org/repo.git"
        );
        assert_eq!(
            redact("https://git.example.com/org/a@b.git"),
            "https://git.example.com/org/a@b.git"
        );
    }

    #[test]
    fn credentials_never_appear_in_displayed_urls() {
        assert_eq!(
            redact("https://user:s3cret@github.com/acme/traffic.git"),
            "https://***@github.com/acme/traffic.git"
        );
        assert_eq!(
            redact("file:///srv/git/traffic.git"),
            "file:///srv/git/traffic.git"
        );
    }

    #[test]
    fn a_folder_that_leaves_the_repository_is_refused() {
        for path in ["..", "../x", "a/../../b", "/../etc", "a/.."] {
            assert!(
                matches!(
                    folder_in_repository(path),
                    Err(SourceError::OutsideRepository { .. })
                ),
                "{path}"
            );
        }
        assert_eq!(
            folder_in_repository("/desired-state/").ok(),
            Some("desired-state")
        );
        assert_eq!(folder_in_repository("a/..b/c").ok(), Some("a/..b/c"));
        assert_eq!(folder_in_repository(".").ok(), Some("."));
    }

    /// A repository whose one commit holds `files` (path, content).
    fn committed(dir: &Path, files: &[(String, Vec<u8>)]) -> (RepoSource, Oid) {
        let repo = Repository::init(dir).expect("init");
        let mut index = repo.index().expect("index");
        for (path, content) in files {
            let blob = repo.blob(content).expect("blob");
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: content.len() as u32,
                id: blob,
                flags: path.len().min(0xfff) as u16,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).expect("add");
        }
        let tree = repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let signature = git2::Signature::now("t", "t@example.com").expect("signature");
        let commit = repo
            .commit(None, &signature, &signature, "files", &tree, &[])
            .expect("commit");
        drop(tree);
        let source =
            RepoSource::open(dir.to_str().expect("utf-8"), dir, GitAuth::default()).expect("open");
        (source, commit)
    }

    #[test]
    fn a_revision_names_its_first_hundred_ignored_entries_and_counts_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files: Vec<(String, Vec<u8>)> = (0..250)
            .map(|n| (format!("ds/img-{n:03}.png"), vec![0u8; 4]))
            .collect();
        files.push(("ds/a.yaml".to_owned(), b"a: 1\n".to_vec()));
        let (source, commit) = committed(dir.path(), &files);
        let snapshot = source.snapshot(commit, "ds", false).expect("snapshot");
        assert_eq!(snapshot.files.len(), 1);
        assert_eq!(snapshot.notes.len(), MAX_NOTES + 1, "{:?}", snapshot.notes);
        assert_eq!(
            snapshot.notes[0],
            "ds/img-000.png: not a *.yaml/*.yml file, ignored"
        );
        assert_eq!(snapshot.notes[MAX_NOTES], "… and 150 more entries ignored");
    }

    #[test]
    fn a_revision_is_read_as_a_folder_is_hidden_entries_skipped_and_extensions_in_any_case() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files: Vec<(String, Vec<u8>)> = [
            "ds/.github/workflows/ci.yml",
            "ds/.hidden.yaml",
            "ds/UPPER.YAML",
            "ds/a.yaml",
            "ds/b.Yml",
        ]
        .iter()
        .map(|p| ((*p).to_owned(), b"a: 1\n".to_vec()))
        .collect();
        let (source, commit) = committed(dir.path(), &files);
        let snapshot = source.snapshot(commit, "ds", false).expect("snapshot");
        let read: Vec<&str> = snapshot.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(read, ["ds/UPPER.YAML", "ds/a.yaml", "ds/b.Yml"]);
        assert!(snapshot.notes.is_empty(), "{:?}", snapshot.notes);
    }

    #[test]
    fn a_revision_of_more_yaml_files_than_a_desired_state_may_hold_is_refused_at_the_one_past() {
        let dir = tempfile::tempdir().expect("tempdir");
        // One empty blob, named MAX_FILES + 1 times.
        let files: Vec<(String, Vec<u8>)> = (0..=crate::model::yaml::MAX_FILES)
            .map(|n| (format!("ds/f{n:06}.yaml"), Vec::new()))
            .collect();
        let (source, commit) = committed(dir.path(), &files);
        match source.snapshot(commit, "ds", false) {
            Err(SourceError::TooMuch { path, message, .. }) => {
                assert_eq!(path, "ds/f100000.yaml");
                assert!(
                    message.starts_with("a desired state may hold at most 100000 YAML files"),
                    "{message}"
                );
            }
            other => panic!("{:?}", other.map(|s| s.files.len())),
        }
    }

    #[test]
    fn remote_detection() {
        assert!(is_remote("https://github.com/acme/traffic.git"));
        assert!(is_remote("file:///srv/git/traffic.git"));
        assert!(is_remote("git@github.com:acme/traffic.git"));
        assert!(!is_remote("."));
    }
}
